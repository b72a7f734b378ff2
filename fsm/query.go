package fsm

import (
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Reads take a *memdb.Txn from FSM.ReadTxn, so a request sees one
// consistent state, at the index ReadTxn reported.

// RegionRecord returns the region's singleton record, or nil before the
// region has bootstrapped.
func RegionRecord(txn *memdb.Txn) *Region {
	raw, err := txn.First(tableRegion, "id", regionID)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Region)
}

// LookupAccessKey returns an access key by id, or nil.
func LookupAccessKey(txn *memdb.Txn, id string) *AccessKey {
	raw, err := txn.First(tableAccessKeys, "id", id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*AccessKey)
}

// AccessKeys returns every access key.
func AccessKeys(txn *memdb.Txn) []*AccessKey {
	it, err := txn.Get(tableAccessKeys, "id")
	if err != nil {
		return nil
	}
	var out []*AccessKey
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*AccessKey))
	}
	return out
}

// SecretByARN returns a secret by its full ARN, or nil.
func SecretByARN(txn *memdb.Txn, arn string) *Secret {
	raw, err := txn.First(tableSecrets, "id", arn)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Secret)
}

// SecretByName returns a secret by its exact name, or nil.
func SecretByName(txn *memdb.Txn, name string) *Secret {
	raw, err := txn.First(tableSecrets, "name", name)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Secret)
}

// ResolveSecret finds the secret a SecretId names: a name, a full ARN or a
// partial ARN (shared/spec §3.3). ARNs of another region or account name
// nothing here. Secrets scheduled for deletion are found.
func ResolveSecret(txn *memdb.Txn, id, region, account string) *Secret {
	if !strings.HasPrefix(id, "arn:") {
		return SecretByName(txn, id)
	}
	parts := strings.SplitN(id, ":", 7)
	if len(parts) != 7 || parts[2] != "secretsmanager" || parts[3] != region ||
		parts[4] != account || parts[5] != "secret" || parts[1] == "" || parts[6] == "" {
		return nil
	}
	if s := SecretByARN(txn, id); s != nil {
		return s
	}
	// Not a full ARN of ours: a partial ARN, the name without the
	// 6-character suffix. A name that itself ends in "-" and six
	// alphanumerics (my-secret) looks like a full ARN's tail, so it is
	// tried as a name whatever its shape, as AWS's SDK clients expect.
	s := SecretByName(txn, parts[6])
	if s == nil || !strings.HasPrefix(s.ARN, strings.Join(parts[:6], ":")+":") {
		return nil
	}
	return s
}

// ListSecrets returns up to limit secrets in creation order whose list key
// is after the given one ("" = from the start), skipping those scheduled
// for deletion unless includeDeleted, and whether more remain. It walks the
// list index from the cursor: a page costs O(page), not O(table). It is
// ListSecretsPage without filters, in the default order.
func ListSecrets(txn *memdb.Txn, after string, limit int, includeDeleted bool) (page []*Secret, more bool, err error) {
	p, err := ListSecretsPage(txn, ListQuery{After: after, Limit: limit, IncludeDeleted: includeDeleted})
	return p.Secrets, p.Next != "", err
}
