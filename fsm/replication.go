package fsm

import (
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Replication between regions, as state (docs/replication.md).
//
// A primary secret lists its replica regions (Secret.Replicas). For each
// replica region the primary region keeps a ReplTarget: the index of its
// own log up to which the replica region has acknowledged every change of
// the secrets replicated to it. The shipper (package replication) follows
// the change feed after that index; a replica region removed from a
// secret leaves a ReplDrop until it acknowledges the removal.
//
// A replica secret (Secret.PrimaryRegion set) holds the primary's state as
// of SourceIndex, the primary's ModifyIndex of what it applied: a shipment
// of an older or equal state is a duplicate and changes nothing, so
// shipping may repeat (at least once) and applying happens once. For each
// primary region the replica region keeps a ReplSource: how far it has
// applied.

// Replica is one replica region of a primary secret.
type Replica struct {
	Region string
	// KmsKeyID is the key in the replica region as the client named it
	// ("" is that region's default key).
	KmsKeyID string `codec:",omitempty"`
	// Force is ForceOverwriteReplicaSecret: the replica replaces a secret
	// of the same name in the replica region.
	Force bool `codec:",omitempty"`
	// AddedIndex is the index of the command that added the region: a
	// shipper whose cursor is below it sends the whole secret.
	AddedIndex uint64
	// Failure is why the replica region refused the secret (the
	// StatusMessage of a Failed replica); "" while it has not.
	Failure string `codec:",omitempty"`
}

// ReplTarget is the primary region's record of one replica region.
type ReplTarget struct {
	Region string
	// Acked is the index of this region's log up to which the replica
	// region has applied every change shipped to it; AckedDate is when
	// that was recorded.
	Acked     uint64
	AckedDate int64
	// AckedAsOf is when the shipper read the changes up to Acked: every
	// change committed before it is in the replica region, so while
	// changes wait, at most those of the time since would be lost (RPO).
	AckedAsOf int64 `codec:",omitempty"`
	// Error is why shipping to the region fails now ("" while it works),
	// ErrorSince since when.
	Error      string `codec:",omitempty"`
	ErrorSince int64  `codec:",omitempty"`
}

// ReplSource is the replica region's record of one primary region.
type ReplSource struct {
	Region string
	// Applied is the primary's index up to which this region has applied
	// what it was shipped; Date is when.
	Applied uint64
	Date    int64
}

// ReplDrop is a replica the primary region must still delete: the region
// was removed from the secret's replicas (RemoveRegionsFromReplication).
type ReplDrop struct {
	ID     string // Region + "\x00" + ARN
	Region string
	ARN    string // the primary secret's ARN
	Index  uint64 // the command that removed the region
}

// Table names of replication state.
const (
	tableReplTargets = "repl_targets"
	tableReplSources = "repl_sources"
	tableReplDrops   = "repl_drops"
)

func replicationSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableReplTargets: {Name: tableReplTargets, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Region"}},
		}},
		tableReplSources: {Name: tableReplSources, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Region"}},
		}},
		tableReplDrops: {Name: tableReplDrops, Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"region": {Name: "region", Indexer: &memdb.StringFieldIndex{Field: "Region"}},
		}},
	}
}

// IsReplica reports whether the secret is a replica of another region's.
func (s *Secret) IsReplica() bool { return s.PrimaryRegion != "" }

// PrimaryRegionName is the region of a replicated secret's primary: a
// replica's PrimaryRegion, or the secret's own region (from its ARN) when
// it has replicas; "" for a secret that is not replicated.
func (s *Secret) PrimaryRegionName() string {
	if s.PrimaryRegion != "" {
		return s.PrimaryRegion
	}
	if len(s.Replicas) == 0 {
		return ""
	}
	if parts := strings.SplitN(s.ARN, ":", 5); len(parts) == 5 {
		return parts[3]
	}
	return ""
}

// Replica returns the secret's replica in region, or nil.
func (s *Secret) Replica(region string) *Replica {
	for i := range s.Replicas {
		if s.Replicas[i].Region == region {
			return &s.Replicas[i]
		}
	}
	return nil
}

// ReplTargets lists the replica regions this region ships to, by name.
func ReplTargets(txn *memdb.Txn) []*ReplTarget {
	it, err := txn.Get(tableReplTargets, "id")
	if err != nil {
		return nil
	}
	var out []*ReplTarget
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*ReplTarget))
	}
	return out
}

// ReplTargetOf returns the record of replica region region, or nil.
func ReplTargetOf(txn *memdb.Txn, region string) *ReplTarget {
	raw, err := txn.First(tableReplTargets, "id", region)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*ReplTarget)
}

// ReplSources lists the primary regions this region applies from.
func ReplSources(txn *memdb.Txn) []*ReplSource {
	it, err := txn.Get(tableReplSources, "id")
	if err != nil {
		return nil
	}
	var out []*ReplSource
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*ReplSource))
	}
	return out
}

// ReplDrops lists the replicas region must still delete.
func ReplDrops(txn *memdb.Txn, region string) []*ReplDrop {
	it, err := txn.Get(tableReplDrops, "region", region)
	if err != nil {
		return nil
	}
	var out []*ReplDrop
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*ReplDrop))
	}
	return out
}

// SecretsReplicatedTo lists every primary secret with a replica in region,
// by ARN: what a shipper sends in full when the change feed no longer
// reaches back to its cursor. It scans the table: O(secrets).
func SecretsReplicatedTo(txn *memdb.Txn, region string) []*Secret {
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return nil
	}
	var out []*Secret
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if s := obj.(*Secret); s.Replica(region) != nil {
			out = append(out, s)
		}
	}
	return out
}

func dropID(region, arn string) string { return region + "\x00" + arn }

// addReplicas adds replica regions to a primary secret s (a clone, being
// changed by the command at index): a region it has already is left as it
// is. Each new region gets a ReplTarget (if it had none) whose cursor is
// just before index, and a pending drop of an earlier replica goes.
func addReplicas(txn *memdb.Txn, index uint64, s *Secret, add []Replica) error {
	for _, r := range add {
		if s.Replica(r.Region) != nil {
			continue
		}
		r.AddedIndex, r.Failure = index, ""
		s.Replicas = append(s.Replicas, r)
		if ReplTargetOf(txn, r.Region) == nil {
			if err := txn.Insert(tableReplTargets, &ReplTarget{Region: r.Region, Acked: index - 1}); err != nil {
				return err
			}
		}
		if _, err := txn.DeleteAll(tableReplDrops, "id", dropID(r.Region, s.ARN)); err != nil {
			return err
		}
	}
	return nil
}

// removeReplicas removes replica regions from s and records a drop for
// each it had.
func removeReplicas(txn *memdb.Txn, index uint64, s *Secret, remove []string) error {
	for _, region := range remove {
		if s.Replica(region) == nil {
			continue
		}
		s.Replicas = slices.DeleteFunc(s.Replicas, func(r Replica) bool { return r.Region == region })
		if err := txn.Insert(tableReplDrops, &ReplDrop{ID: dropID(region, s.ARN), Region: region, ARN: s.ARN, Index: index}); err != nil {
			return err
		}
	}
	if len(s.Replicas) == 0 {
		s.Replicas = nil
	}
	return nil
}

// ReplicationPending reports whether a change up to index, of a secret
// replicated to some region, may wait for that region's acknowledgement
// (a region that cannot be reached, ReplTarget.Error, is not waited for).
// The feed keeps a secret's latest change only, so a secret changed after
// index may hide a change at or before it: any replicated secret changed
// after the region's acknowledgement counts, which errs on waiting.
func ReplicationPending(txn *memdb.Txn, index uint64) bool {
	for _, t := range ReplTargets(txn) {
		if t.Acked >= index || t.Error != "" {
			continue
		}
		for _, d := range ReplDrops(txn, t.Region) {
			if d.Index <= index {
				return true
			}
		}
		it, err := txn.LowerBound(tableSecrets, "modify", t.Acked+1)
		if err != nil {
			return false
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if obj.(*Secret).Replica(t.Region) != nil {
				return true
			}
		}
	}
	return false
}

// PendingFor counts what waits for replica region t.Region: the
// replicated secrets changed after its acknowledgement (each once, however
// often it changed) and the replicas it must still delete; oldest is the
// earliest LastChangedDate among those secrets (0 if none).
func PendingFor(txn *memdb.Txn, t *ReplTarget) (n int, oldest int64) {
	for _, d := range ReplDrops(txn, t.Region) {
		if d.Index > t.Acked {
			n++
		}
	}
	it, err := txn.LowerBound(tableSecrets, "modify", t.Acked+1)
	if err != nil {
		return n, 0
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if s := obj.(*Secret); s.Replica(t.Region) != nil {
			n++
			if oldest == 0 || s.LastChangedDate < oldest {
				oldest = s.LastChangedDate
			}
		}
	}
	return n, oldest
}

// ConflictVersion is a version kept as a conflict (Version.Conflict), for
// coffer region conflicts.
type ConflictVersion struct {
	ARN         string
	Name        string
	VersionID   string
	CreatedDate int64
	Conflict    Conflict
}

// Conflicts lists every conflict version in this region, by secret ARN.
// It scans the table: O(secrets).
func Conflicts(txn *memdb.Txn) []ConflictVersion {
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return nil
	}
	var out []ConflictVersion
	for obj := it.Next(); obj != nil; obj = it.Next() {
		s := obj.(*Secret)
		for _, v := range s.Versions {
			if v.Conflict != nil {
				out = append(out, ConflictVersion{ARN: s.ARN, Name: s.Name, VersionID: v.VersionID,
					CreatedDate: v.CreatedDate, Conflict: *v.Conflict})
			}
		}
	}
	return out
}
