package nft

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
)

// SetSPAKeys replaces the elements of the set spakeys with ids, in one
// transaction (flush the set, add them): the key ids the daemon accepts
// now, so that an SPA packet of any other never leaves the kernel. The Conn
// keeps them, so that Apply (a repair) puts them back.
func (c *Conn) SetSPAKeys(ids []SPAKeyID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spaKeys = slices.Clone(ids)
	set := spaKeysSet(&nftables.Table{Name: c.table, Family: nftables.TableFamilyINet})
	set.ID = 0
	msgs, err := encode(func(nc *nftables.Conn) error {
		nc.FlushSet(set)
		return addElements(nc, set, spaKeyElements(c.spaKeys))
	})
	if err == nil {
		err = c.sendRetry(msgs)
	}
	if err != nil {
		return fmt.Errorf("set the SPA key ids of table inet %s: %w", c.table, err)
	}
	return nil
}
