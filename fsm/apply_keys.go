package fsm

import (
	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdRekey CommandType = 17
)

// Rekey replaces the root key: the keyring sealed under the new one, the
// new seal configuration, and every access key re-sealed under the
// keyring (keys sealed under the old root key by earlier versions move
// under the keyring here, so that nothing depends on the old root key).
// PrevInitID is the seal the rekey was computed against: if another rekey
// landed first, this one is refused and changes nothing.
type Rekey struct {
	PrevInitID    string
	SealedKeyring []byte
	Seal          SealConfig
	AccessKeys    []AccessKey
}

func init() {
	register(CmdRekey, "Rekey", applyRekey)
}

func applyRekey(txn *memdb.Txn, index uint64, c *Rekey) any {
	rec := RegionRecord(txn)
	if rec == nil {
		return apierr.New(apierr.InvalidRequest, "the region is not initialized")
	}
	if rec.Seal.InitID != c.PrevInitID {
		return apierr.New(apierr.InvalidRequest, "another rekey finished first; nothing was changed: rekey again")
	}
	// Every access key must be in the command, re-sealed: one left out
	// would be sealed under a root key nobody holds any more.
	given := make(map[string]*AccessKey, len(c.AccessKeys))
	for i := range c.AccessKeys {
		given[c.AccessKeys[i].AccessKeyID] = &c.AccessKeys[i]
	}
	it, err := txn.Get(tableAccessKeys, "id")
	if err != nil {
		return internal(err)
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ak := raw.(*AccessKey)
		g := given[ak.AccessKeyID]
		if g == nil || g.Identity != ak.Identity {
			return apierr.New(apierr.InvalidRequest, "the access keys changed while the rekey was computed; nothing was changed: rekey again")
		}
		n++
	}
	if n != len(given) {
		return apierr.New(apierr.InvalidRequest, "the rekey names access keys the region does not have; nothing was changed")
	}
	for _, ak := range given {
		k := *ak
		if err := txn.Insert(tableAccessKeys, &k); err != nil {
			return internal(err)
		}
	}
	r := *rec
	r.SealedKeyring, r.Seal = c.SealedKeyring, c.Seal
	if err := txn.Insert(tableRegion, &r); err != nil {
		return internal(err)
	}
	return &Result{}
}
