package spa

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20"
)

const (
	vectorsDir  = "../testdata/vectors"
	vectorsFile = vectorsDir + "/spa.tsv"
)

// vector is one row of spa.tsv.
type vector struct {
	line   int
	secret string
	period time.Duration
	nonce  [NonceLen]byte
	m      Message
	keyID  string
	packet []byte
}

// parseFields reads a message from its columns: time, action, ports
// (comma-separated, "-" for none), duration (seconds) and address ("-"
// for none).
func parseFields(t *testing.T, c []string) Message {
	t.Helper()
	var m Message
	sec, err := strconv.ParseInt(c[0], 10, 64)
	if err != nil {
		t.Fatalf("time %q: %v", c[0], err)
	}
	m.Time = time.Unix(sec, 0)
	switch c[1] {
	case "open":
		m.Action = Open
	case "close":
		m.Action = Close
	default:
		t.Fatalf("action %q", c[1])
	}
	if c[2] != "-" {
		for _, f := range strings.Split(c[2], ",") {
			p, err := strconv.ParseUint(f, 10, 16)
			if err != nil {
				t.Fatalf("port %q: %v", f, err)
			}
			m.Ports = append(m.Ports, uint16(p))
		}
	}
	d, err := strconv.ParseUint(c[3], 10, 32)
	if err != nil {
		t.Fatalf("duration %q: %v", c[3], err)
	}
	m.Duration = time.Duration(d) * time.Second
	if c[4] != "-" {
		if m.Address, err = netip.ParseAddr(c[4]); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// fields writes m as the columns that parseFields reads.
func fields(m *Message) []string {
	ports := make([]string, len(m.Ports))
	for i, p := range m.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	c := []string{strconv.FormatInt(m.Time.Unix(), 10), m.Action.String(), strings.Join(ports, ","),
		strconv.FormatInt(int64(m.Duration/time.Second), 10), "-"}
	if len(ports) == 0 {
		c[2] = "-"
	}
	if m.Address.IsValid() {
		c[4] = m.Address.String()
	}
	return c
}

// readVectors reads spa.tsv.
func readVectors(t *testing.T) []vector {
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var vs []vector
	for i, line := range lines[1:] {
		c := strings.Split(line, "\t")
		if len(c) != 10 {
			t.Fatalf("spa.tsv:%d: %d columns, want 10", i+2, len(c))
		}
		v := vector{line: i + 2, secret: c[0], m: parseFields(t, c[3:8]), keyID: c[8]}
		ps, err := strconv.Atoi(c[1])
		if err != nil {
			t.Fatalf("spa.tsv:%d: %v", v.line, err)
		}
		v.period = time.Duration(ps) * time.Second
		n, err := hex.DecodeString(c[2])
		if err != nil || len(n) != NonceLen {
			t.Fatalf("spa.tsv:%d: nonce %q: %v", v.line, c[2], err)
		}
		v.nonce = [NonceLen]byte(n)
		if v.packet, err = hex.DecodeString(c[9]); err != nil {
			t.Fatalf("spa.tsv:%d: %v", v.line, err)
		}
		vs = append(vs, v)
	}
	if len(vs) < 10 {
		t.Fatalf("%d vectors", len(vs))
	}
	return vs
}

// TestVectors checks Seal, KeyID and Open against every row of the
// vectors that testdata/vectors/spa.sh computed with openssl.
func TestVectors(t *testing.T) {
	for _, v := range readVectors(t) {
		k := NewKey(v.secret)
		if id := k.KeyID(PeriodOf(v.m.Time, v.period)); hex.EncodeToString(id[:]) != v.keyID {
			t.Errorf("spa.tsv:%d: key id %x, want %s", v.line, id, v.keyID)
		}
		pkt, err := Seal(nil, k, v.period, v.nonce, &v.m)
		if err != nil {
			t.Fatalf("spa.tsv:%d: %v", v.line, err)
		}
		if !bytes.Equal(pkt, v.packet) {
			t.Errorf("spa.tsv:%d: Seal\n%x, want\n%x", v.line, pkt, v.packet)
		}
		o := NewOpener([]*Key{NewKey("someone else"), k}, v.period, time.Minute)
		var m Message
		u, d, err := o.Open(v.packet, v.m.Time.Add(-time.Minute), &m)
		if err != nil || u != 1 || d != NonceDigest(v.nonce) || !sameMessage(&m, &v.m) {
			t.Errorf("spa.tsv:%d: Open: user %d, %+v, %v", v.line, u, m, err)
		}
	}
}

// needOpenssl skips the test when openssl is not installed, unless
// CI=true, where it fails.
func needOpenssl(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not installed")
		}
		t.Skip("openssl not installed")
	}
}

// script runs spa.sh with args.
func script(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"spa.sh"}, args...)...)
	cmd.Dir = vectorsDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spa.sh %q: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestScript re-runs testdata/vectors/spa.sh: its table is the committed
// spa.tsv, it opens every packet of the table and packets that Go sealed
// from random inputs, and its HChaCha20 gives the test vector of
// draft-irtf-cfrg-xchacha-03, section 2.2.1.
func TestScript(t *testing.T) {
	needOpenssl(t)
	const (
		key   = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		nonce = "000000090000004a0000000031415927"
		want  = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
	)
	if got := strings.TrimSpace(script(t, "hchacha20", key, nonce)); got != want {
		t.Errorf("spa.sh hchacha20 = %s, want %s", got, want)
	}
	k, _ := hex.DecodeString(key)
	n, _ := hex.DecodeString(nonce)
	if got, err := chacha20.HChaCha20(k, n); err != nil || hex.EncodeToString(got) != want {
		t.Errorf("chacha20.HChaCha20 = %x, %v", got, err)
	}

	wantTable, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if out := script(t); out != string(wantTable) {
		t.Errorf("spa.sh output differs from %s; regenerate with: cd testdata/vectors && sh spa.sh > spa.tsv\n%s", vectorsFile, out)
	}
	for _, v := range readVectors(t) {
		out := script(t, "open", v.secret, strconv.Itoa(int(v.period/time.Second)), hex.EncodeToString(v.packet))
		if m := parseFields(t, strings.Split(strings.TrimSuffix(out, "\n"), "\t")); !sameMessage(&m, &v.m) {
			t.Errorf("spa.tsv:%d: spa.sh open: %+v, want %+v", v.line, m, v.m)
		}
	}

	// Random inputs, sealed by Go, opened by the script, and sealed by the
	// script too.
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := range 6 {
		secret, period, nonce, m := randomInputs(r)
		ps := strconv.Itoa(int(period / time.Second))
		pkt, err := Seal(nil, NewKey(secret), period, nonce, &m)
		if err != nil {
			t.Fatal(err)
		}
		out := script(t, "open", secret, ps, hex.EncodeToString(pkt))
		if got := parseFields(t, strings.Split(strings.TrimSuffix(out, "\n"), "\t")); !sameMessage(&got, &m) {
			t.Errorf("random %d (%q, %s): spa.sh open: %+v, want %+v", i, secret, ps, got, m)
		}
		row := strings.Split(strings.TrimSuffix(script(t, append([]string{"seal", secret, ps, hex.EncodeToString(nonce[:])}, fields(&m)...)...), "\n"), "\t")
		if row[9] != hex.EncodeToString(pkt) {
			t.Errorf("random %d: spa.sh seal of %q %s %x %+v:\n%s, Go:\n%x", i, secret, ps, nonce, m, row[9], pkt)
		}
	}
}

// randomInputs returns a random secret (UTF-8, no tab nor newline), period,
// nonce and valid message.
func randomInputs(r *rand.Rand) (string, time.Duration, [NonceLen]byte, Message) {
	runes := []rune("abcXYZ019 !\"'\\$`*?éß☃秘密-")
	s := make([]rune, 1+r.IntN(40))
	for i := range s {
		s[i] = runes[r.IntN(len(runes))]
	}
	period := []time.Duration{time.Second, 30 * time.Second, time.Hour, 24 * time.Hour, time.Duration(1+r.IntN(1e6)) * time.Second}[r.IntN(5)]
	var nonce [NonceLen]byte
	for i := range nonce {
		nonce[i] = byte(r.Uint32())
	}
	m := Message{Time: time.Unix(r.Int64N(1<<33), 0), Action: Action(1 + r.IntN(2)), Duration: time.Duration(r.Uint32()) * time.Second}
	for range r.IntN(MaxPorts + 1) {
		m.Ports = append(m.Ports, uint16(1+r.IntN(65535)))
	}
	switch r.IntN(3) {
	case 1:
		m.Address = netip.AddrFrom4([4]byte{byte(1 + r.IntN(254)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	case 2:
		var a [16]byte
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		a[0] = 0x20 | a[0]&0x0f // not IPv4-mapped nor unspecified
		m.Address = netip.AddrFrom16(a)
	}
	return string(s), period, nonce, m
}
