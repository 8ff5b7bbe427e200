package syngen

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// AddSpoofRoutes routes SpoofNet4 and SpoofNet6 in namespace serverNS via
// the client's veth addresses via4 and via6 (for a netns.Pair: ClientIP4,
// ClientIP6), so that the server's replies to spoofed sources go back into
// the client namespace, where they die (no local address there). An invalid
// via skips that family.
func AddSpoofRoutes(serverNS string, via4, via6 netip.Addr) error {
	for _, r := range []struct {
		net netip.Prefix
		via netip.Addr
	}{{SpoofNet4, via4}, {SpoofNet6, via6}} {
		if !r.via.IsValid() {
			continue
		}
		if err := checkTestNet(r.via); err != nil {
			return fmt.Errorf("spoof route via: %w", err)
		}
		args := []string{"-n", serverNS, "route", "replace", r.net.String(), "via", r.via.String()}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
