package fsm

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdSetReplication  CommandType = 24
	CmdApplyReplicated CommandType = 25
	CmdAckReplication  CommandType = 26
	CmdPromoteReplica  CommandType = 27
	CmdPromoteRegion   CommandType = 28
	CmdDemoteRegion    CommandType = 29
	CmdDismissConflict CommandType = 30
)

// SetReplication adds replica regions to a primary secret
// (ReplicateSecretToRegions) or removes them (RemoveRegionsFromReplication).
// A region added twice or removed while absent is no change for it.
type SetReplication struct {
	ARN    string
	Add    []Replica `codec:",omitempty"`
	Remove []string  `codec:",omitempty"`
	Date   int64
}

// ApplyReplicated is what a replica region's leader applies for one
// shipment from primary region Source: secrets in the state the primary
// had at their SourceIndex, with data keys already wrapped under this
// region's KEKs, and the replicas to delete.
type ApplyReplicated struct {
	Source  string
	Secrets []ReplicatedSecret `codec:",omitempty"`
	// Drops are the ARNs, in this region, of replicas to delete; they are
	// applied before Secrets.
	Drops []string `codec:",omitempty"`
	// Next is the primary's index this shipment brings the region to
	// (ReplSource.Applied).
	Next uint64
	Date int64
}

// ReplicatedSecret is a primary secret's state as a replica region
// applies it.
type ReplicatedSecret struct {
	// ARN is the replica's ARN: the primary's with this region in it.
	ARN         string
	PrimaryARN  string
	Name        string
	Description string
	// KmsKeyID and KeyID are the replica's key, in this region.
	KmsKeyID        string
	KeyID           string `codec:",omitempty"`
	Tags            []Tag
	TagsEverSet     bool
	CreatedDate     int64
	LastChangedDate int64
	DeletedDate     int64
	DeletionDate    int64
	Type            string
	ResourcePolicy  string
	SourceIndex     uint64
	// Epoch is the primary's fencing epoch (Secret.Epoch).
	Epoch uint64 `codec:",omitempty"`
	// Regions are the primary's replica regions and its own, each with
	// its key there (Secret.PrimaryReplicas).
	Regions []Replica `codec:",omitempty"`
	// Force replaces a secret of the same name that is not this replica.
	Force    bool `codec:",omitempty"`
	Versions []ReplicatedVersion
	// Rotation is the primary's rotation without the rotation in flight
	// (Rotation.Shipped), its rotator named in this region.
	Rotation *Rotation `codec:",omitempty"`
}

// ReplicatedVersion is one version of a ReplicatedSecret. Value is nil
// when the shipper sent no value because the replica has it already; a
// Placeholder (a rotation's AWSPENDING without a value) has none.
type ReplicatedVersion struct {
	VersionID   string
	Stages      []string
	CreatedDate int64
	Binary      bool
	PrimaryARN  string
	Placeholder bool             `codec:",omitempty"`
	Value       *crypto.Envelope `codec:",omitempty"`
	Digest      []byte           `codec:",omitempty"`
	Conflict    *Conflict        `codec:",omitempty"`
}

// Outcomes of one secret of an ApplyReplicated (ReplOutcome.Status).
const (
	ReplApplied = "applied" // applied now, or earlier (a duplicate)
	ReplFailed  = "failed"  // refused for good; Message says why
	// ReplNeedValues: the replica lacks a version the shipper sent no
	// value for; the shipper sends the secret again with every value.
	ReplNeedValues = "need-values"
	// ReplPromoted: the replica was promoted to a primary here
	// (PromoteReplica); the primary region stops replicating to it.
	ReplPromoted = "promoted"
	// ReplFenced: the replica region holds the secret at a higher epoch
	// than the shipment's, with region Primary as its primary (a
	// promotion there): the shipping region's secret is superseded and
	// becomes a replica of Primary.
	ReplFenced = "fenced"
)

// ReplOutcome is what became of one secret of a shipment. ARN is the
// primary's ARN.
type ReplOutcome struct {
	ARN     string
	Status  string
	Message string `codec:",omitempty"`
	// Epoch and Primary are set when Status is ReplFenced.
	Epoch   uint64 `codec:",omitempty"`
	Primary string `codec:",omitempty"`
}

// AckReplication records, in the primary region, what replica region
// Region answered: that it applied every change up to Index (0: no
// progress to record), which secrets it refused or promoted, or, with
// Error, why it cannot be reached.
type AckReplication struct {
	Region string
	Index  uint64
	// AsOf is when the shipper read the changes up to Index: everything
	// committed before it is in the replica region (ReplTarget.AckedAsOf).
	AsOf     int64         `codec:",omitempty"`
	Error    string        `codec:",omitempty"`
	Outcomes []ReplOutcome `codec:",omitempty"`
	Date     int64
}

// PromoteReplica turns a replica into a primary secret of this region
// (StopReplicationToReplica): clients may write it from then on, and
// shipments from its old primary no longer change it.
type PromoteReplica struct {
	ARN  string
	Date int64
}

// PromoteRegion promotes this region during a failover (coffer region
// promote): every replica secret (of primary region From, when set)
// becomes a primary at the next epoch and replicates to its old primary's
// region and the other replica regions, which become its replicas as they
// learn the epoch; every demoted primary becomes writable again, at the
// next epoch too.
type PromoteRegion struct {
	From string `codec:",omitempty"`
	Date int64
}

// DemoteRegion makes every primary secret of this region with replica
// regions read-only to clients (coffer region demote), the first step of
// a planned move of the primary: shipping goes on until a replica region
// is promoted.
type DemoteRegion struct {
	Date int64
}

func init() {
	register(CmdSetReplication, "SetReplication", applySetReplication)
	register(CmdApplyReplicated, "ApplyReplicated", applyApplyReplicated)
	register(CmdAckReplication, "AckReplication", applyAckReplication)
	register(CmdPromoteReplica, "PromoteReplica", applyPromoteReplica)
	register(CmdPromoteRegion, "PromoteRegion", applyPromoteRegion)
	register(CmdDemoteRegion, "DemoteRegion", applyDemoteRegion)
	register(CmdDismissConflict, "DismissConflict", applyDismissConflict)
}

func applySetReplication(txn *memdb.Txn, index uint64, c *SetReplication) any {
	get := writableSecret
	if len(c.Add) == 0 {
		// Removing replicas is allowed during the recovery window.
		get = secretByARN
	}
	s, errResp := get(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	before := len(s.Replicas)
	if err := removeReplicas(txn, index, s, c.Remove); err != nil {
		return internal(err)
	}
	removed := before - len(s.Replicas)
	if err := addReplicas(txn, index, s, c.Add); err != nil {
		return internal(err)
	}
	if removed == 0 && len(s.Replicas) == before {
		// Every region was there already, or absent: nothing changes.
		return &Result{ARN: s.ARN, Name: s.Name}
	}
	if e := changeSecret(txn, index, s, c.Date); e != nil {
		return e
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}

func applyApplyReplicated(txn *memdb.Txn, index uint64, c *ApplyReplicated) any {
	res := &Result{}
	// Drops first: a secret re-created under the same name in the primary
	// region takes the name its dropped replica frees.
	for _, arn := range c.Drops {
		if raw, _ := txn.First(tableSecrets, "id", arn); raw != nil {
			if s := raw.(*Secret); s.PrimaryRegion == c.Source {
				if e := removeSecret(txn, index, s, c.Date); e != nil {
					return e
				}
			}
		}
	}
	for i := range c.Secrets {
		o, err := applyReplicatedSecret(txn, index, c, &c.Secrets[i])
		if err != nil {
			return err
		}
		res.Replication = append(res.Replication, o)
	}
	fencedOnly := len(res.Replication) > 0
	for _, o := range res.Replication {
		fencedOnly = fencedOnly && o.Status == ReplFenced
	}
	if c.Next > 0 && !fencedOnly {
		// (A shipment refused for a lower epoch is not from a primary
		// region of this one any more.)
		src := &ReplSource{Region: c.Source, Applied: c.Next, Date: c.Date}
		if raw, _ := txn.First(tableReplSources, "id", c.Source); raw != nil {
			src.Applied = max(src.Applied, raw.(*ReplSource).Applied)
		}
		if err := txn.Insert(tableReplSources, src); err != nil {
			return internal(err)
		}
	}
	return res
}

func applyReplicatedSecret(txn *memdb.Txn, index uint64, c *ApplyReplicated, rs *ReplicatedSecret) (ReplOutcome, *apierr.Error) {
	out := ReplOutcome{ARN: rs.PrimaryARN, Status: ReplApplied}
	failed := func(format string, args ...any) (ReplOutcome, *apierr.Error) {
		out.Status, out.Message = ReplFailed, fmt.Sprintf(format, args...)
		return out, nil
	}
	self := "this region"
	if r := RegionRecord(txn); r != nil {
		self = r.Name
	}
	fenced := func(epoch uint64, primary string) (ReplOutcome, *apierr.Error) {
		out.Status, out.Epoch, out.Primary = ReplFenced, epoch, primary
		out.Message = fmt.Sprintf("Replication refused: the secret's primary is in region %s at epoch %d; the shipment is of epoch %d.", primary, epoch, rs.Epoch)
		return out, nil
	}
	var local *Secret
	superseded := false // a primary here, promoted over elsewhere
	if raw, _ := txn.First(tableSecrets, "id", rs.ARN); raw != nil {
		local = raw.(*Secret)
		switch {
		case !local.IsReplica() && local.Replica(c.Source) != nil && rs.Epoch > local.Epoch:
			// Another region was promoted over this one: the secret
			// becomes its replica, keeping what only it has as conflicts.
			superseded = true
		case !local.IsReplica() && local.Replica(c.Source) != nil && local.Epoch == rs.Epoch:
			return failed("Replication failed: regions %s and %s both hold the secret as its primary at epoch %d (two promotions from the same epoch); demote and promote the one to keep (coffer region demote, then coffer region promote) to settle it.", self, c.Source, rs.Epoch)
		case !local.IsReplica() && local.Replica(c.Source) != nil:
			// This region was promoted over the shipping one.
			return fenced(local.Epoch, self)
		case !local.IsReplica():
			out.Status, out.Message = ReplPromoted, "The replica was promoted to a standalone secret in its region."
			return out, nil
		case rs.Epoch < local.Epoch:
			return fenced(local.Epoch, local.PrimaryRegion)
		case local.PrimaryRegion != c.Source && rs.Epoch == local.Epoch:
			return failed("Replication failed: the secret is a replica of region %s.", local.PrimaryRegion)
		case rs.Epoch == local.Epoch && rs.SourceIndex <= local.SourceIndex:
			return out, nil // applied already
		}
		// Otherwise a newer state of the same primary, or the first of a
		// primary promoted at a higher epoch.
	}
	// Every version first: a shipment that lacks a value the replica does
	// not have changes nothing, not even a name it would take over.
	s := &Secret{
		ARN: rs.ARN, Name: rs.Name, Description: rs.Description, KmsKeyID: rs.KmsKeyID, KeyID: rs.KeyID,
		Tags: slices.Clone(rs.Tags), TagsEverSet: rs.TagsEverSet,
		CreatedDate: rs.CreatedDate, LastChangedDate: rs.LastChangedDate,
		DeletedDate: rs.DeletedDate, DeletionDate: rs.DeletionDate,
		ListKey: ListKey(rs.CreatedDate, rs.ARN), Type: rs.Type, ResourcePolicy: rs.ResourcePolicy,
		CreateIndex: index, PrimaryRegion: c.Source, SourceIndex: rs.SourceIndex,
		Epoch: rs.Epoch, PrimaryReplicas: slices.Clone(rs.Regions),
		Rotation: rs.Rotation.Shipped(),
	}
	if local != nil {
		s.CreateIndex, s.LastAccessedDate = local.CreateIndex, local.LastAccessedDate
	}
	for _, rv := range rs.Versions {
		v := &Version{VersionID: rv.VersionID, Stages: slices.Clone(rv.Stages), CreatedDate: rv.CreatedDate,
			Binary: rv.Binary, PrimaryARN: rv.PrimaryARN, Conflict: rv.Conflict}
		var have *Version
		if local != nil {
			have = local.Version(rv.VersionID)
		}
		switch {
		case rv.Placeholder:
		case rv.Value != nil:
			v.Value, v.Digest, v.Index = *rv.Value, rv.Digest, index
		case have != nil && have.HasValue():
			v.Value, v.Digest, v.Index = have.Value, have.Digest, have.Index
		default:
			out.Status = ReplNeedValues
			return out, nil
		}
		if have != nil {
			v.LastAccessedDate = have.LastAccessedDate
		}
		s.Versions = append(s.Versions, v)
	}
	if local != nil {
		writtenAt := local.Epoch
		if local.Reconcile {
			writtenAt = local.ReconcileEpoch
		}
		keepConflicts(s, local, superseded || local.Reconcile, self, writtenAt, c.Date)
	}
	if local == nil {
		if raw, _ := txn.First(tableSecrets, "name", rs.Name); raw != nil {
			other := raw.(*Secret)
			region := "this region"
			if r := RegionRecord(txn); r != nil {
				region = "region " + r.Name
			}
			switch {
			case !rs.Force:
				return failed("Replication failed: Secret name %s already exists in %s.", rs.Name, region)
			case len(other.Replicas) > 0:
				// Replacing it would orphan its own replicas, as
				// DeleteSecret refuses to.
				return failed("Replication failed: Secret name %s in %s is a primary secret with replica regions of its own; remove them before overwriting it.", rs.Name, region)
			}
			if e := removeSecret(txn, index, other, c.Date); e != nil {
				return out, e
			}
		}
	}
	if e := putSecret(txn, index, s); e != nil {
		return out, e
	}
	return out, nil
}

// keepConflicts adds to s, the state a replica takes from a shipment, the
// versions of local (what the region held) that the shipment lacks and
// that must not go: earlier conflicts, and, when reconcile (local was the
// primary here until another region's promotion superseded it), every
// version with a value, which this region acknowledged to its clients and
// the new primary never received. They stay unlabeled.
func keepConflicts(s, local *Secret, reconcile bool, region string, epoch uint64, date int64) {
	for _, v := range local.Versions {
		if s.Version(v.VersionID) != nil {
			continue
		}
		switch {
		case v.Conflict != nil:
		case reconcile && v.HasValue():
			v = &Version{VersionID: v.VersionID, CreatedDate: v.CreatedDate, LastAccessedDate: v.LastAccessedDate,
				Binary: v.Binary, Value: v.Value, Digest: v.Digest, PrimaryARN: v.AADARN(local), Index: v.Index,
				Conflict: &Conflict{Region: region, Epoch: epoch, Date: date}}
		default:
			continue
		}
		c := *v
		c.Stages = nil
		s.Versions = append(s.Versions, &c)
	}
}

func applyAckReplication(txn *memdb.Txn, index uint64, c *AckReplication) any {
	raw, err := txn.First(tableReplTargets, "id", c.Region)
	if err != nil {
		return internal(err)
	}
	if raw == nil {
		return &Result{} // the region's replication state was reset
	}
	t := *raw.(*ReplTarget)
	if c.Error != "" {
		if t.Error == "" {
			t.ErrorSince = c.Date
		}
		t.Error = c.Error
	} else if c.Index > 0 {
		t.Error, t.ErrorSince = "", 0
	}
	if c.Index > t.Acked {
		t.Acked, t.AckedDate, t.AckedAsOf = c.Index, c.Date, c.AsOf
	}
	if err := txn.Insert(tableReplTargets, &t); err != nil {
		return internal(err)
	}
	for _, d := range ReplDrops(txn, c.Region) {
		if d.Index <= c.Index {
			if err := txn.Delete(tableReplDrops, d); err != nil {
				return internal(err)
			}
		}
	}
	for _, o := range c.Outcomes {
		raw, _ := txn.First(tableSecrets, "id", o.ARN)
		if raw == nil {
			continue
		}
		s := raw.(*Secret)
		r := s.Replica(c.Region)
		if r == nil {
			continue
		}
		failure := ""
		if o.Status == ReplFailed {
			failure = o.Message
		}
		switch {
		case o.Status == ReplFenced:
			if o.Epoch <= s.Epoch {
				continue // a stale answer; this region is the primary
			}
			// Another region was promoted over this one: the secret turns
			// into a replica of it now, so clients can no longer change
			// it here, and the first state the new primary ships keeps
			// what only this region has as conflicts (Reconcile).
			s = s.clone()
			s.PrimaryReplicas = append(s.Replicas, Replica{Region: selfName(txn), KmsKeyID: s.KmsKeyID})
			s.Replicas, s.Demoted = nil, false
			s.PrimaryRegion, s.SourceIndex, s.Reconcile = cmp.Or(o.Primary, c.Region), 0, true
			s.ReconcileEpoch, s.Epoch = s.Epoch, o.Epoch
			if e := putSecret(txn, index, s); e != nil {
				return e
			}
		case o.Status == ReplPromoted:
			// The replica region promoted its replica: it is a secret of
			// its own now, and this one stops replicating to it (no drop:
			// the promoted secret stays).
			s = s.clone()
			s.Replicas = slices.DeleteFunc(s.Replicas, func(r Replica) bool { return r.Region == c.Region })
			if len(s.Replicas) == 0 {
				s.Replicas = nil
			}
			if e := putSecret(txn, index, s); e != nil {
				return e
			}
		case r.Failure != failure:
			// The replica's status is not a change of the secret: its
			// ModifyIndex stays, so the feed does not ship it again.
			s = s.clone()
			s.Replica(c.Region).Failure = failure
			if err := txn.Insert(tableSecrets, s); err != nil {
				return internal(err)
			}
		}
	}
	return &Result{}
}

func applyPromoteReplica(txn *memdb.Txn, index uint64, c *PromoteReplica) any {
	s, e := storedSecret(txn, c.ARN)
	if e != nil {
		return e
	}
	if !s.IsReplica() {
		return apierr.Newf(apierr.InvalidRequest, "The secret %s is not a replica: there is no replication to stop.", s.ARN)
	}
	s = s.clone()
	s.PrimaryRegion, s.SourceIndex, s.PrimaryReplicas, s.Reconcile, s.ReconcileEpoch = "", 0, nil, false, 0
	s.Epoch++
	if e := changeSecret(txn, index, s, c.Date); e != nil {
		return e
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}

func applyPromoteRegion(txn *memdb.Txn, index uint64, c *PromoteRegion) any {
	self := selfName(txn)
	var promote, undemote []*Secret
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return internal(err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		switch s := obj.(*Secret); {
		case s.IsReplica() && (c.From == "" || s.PrimaryRegion == c.From):
			promote = append(promote, s)
		case s.Demoted:
			undemote = append(undemote, s)
		}
	}
	if len(promote) == 0 && len(undemote) == 0 {
		from := ""
		if c.From != "" {
			from = " of region " + c.From
		}
		return apierr.Newf(apierr.InvalidRequest, "Region %s holds no replica secrets%s and no demoted secrets: there is nothing to promote.", self, from)
	}
	sources := map[string]bool{}
	for _, s := range promote {
		old := s.PrimaryRegion
		sources[old] = true
		add := []Replica{}
		if !slices.ContainsFunc(s.PrimaryReplicas, func(r Replica) bool { return r.Region == old }) {
			add = append(add, Replica{Region: old})
		}
		for _, r := range s.PrimaryReplicas {
			if r.Region != self {
				add = append(add, Replica{Region: r.Region, KmsKeyID: r.KmsKeyID})
			}
		}
		s = s.clone()
		s.PrimaryRegion, s.SourceIndex, s.PrimaryReplicas, s.Reconcile, s.ReconcileEpoch = "", 0, nil, false, 0
		s.Epoch++
		if err := addReplicas(txn, index, s, add); err != nil {
			return internal(err)
		}
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	for _, s := range undemote {
		// Writable again at the next epoch, shipped to its replicas: a
		// region that was promoted from the same epoch meanwhile (a split
		// brain) is superseded by it, so demote-then-promote settles one.
		s = s.clone()
		s.Demoted = false
		s.Epoch++
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	// A primary region none of whose secrets this one replicates any more
	// is no longer a source.
	for region := range sources {
		if !hasReplicaOf(txn, region) {
			if _, err := txn.DeleteAll(tableReplSources, "id", region); err != nil {
				return internal(err)
			}
		}
	}
	return &Result{Count: len(promote) + len(undemote)}
}

func applyDemoteRegion(txn *memdb.Txn, index uint64, c *DemoteRegion) any {
	var demote []*Secret
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return internal(err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if s := obj.(*Secret); len(s.Replicas) > 0 && !s.Demoted {
			demote = append(demote, s)
		}
	}
	if len(demote) == 0 {
		return apierr.Newf(apierr.InvalidRequest, "Region %s holds no writable primary secret with replica regions: there is nothing to demote.", selfName(txn))
	}
	for _, s := range demote {
		s = s.clone()
		s.Demoted = true
		if err := txn.Insert(tableSecrets, s); err != nil {
			return internal(err)
		}
	}
	return &Result{Count: len(demote)}
}

// DismissConflict removes a conflict version from a secret of this region
// for good, once an operator has dealt with it (coffer region conflicts
// dismiss). Every region that holds a conflict keeps its own copy (a
// replica keeps its conflicts whatever its primary ships), so a dismissal
// acts on this region's copy only.
type DismissConflict struct {
	ARN       string
	VersionID string
	Date      int64
}

func applyDismissConflict(txn *memdb.Txn, index uint64, c *DismissConflict) any {
	s, e := storedSecret(txn, c.ARN)
	if e != nil {
		return e
	}
	i := slices.IndexFunc(s.Versions, func(v *Version) bool { return v.VersionID == c.VersionID })
	if i < 0 {
		return apierr.Newf(apierr.ResourceNotFound, "Secrets Manager can't find the specified secret version: %s has no version %s.", s.Name, c.VersionID)
	}
	if s.Versions[i].Conflict == nil {
		return apierr.Newf(apierr.InvalidRequest,
			"Version %s of %s is not a conflict version: only the versions coffer region conflicts lists can be dismissed.", c.VersionID, s.Name)
	}
	s = s.clone()
	s.Versions = slices.Delete(s.Versions, i, i+1)
	if e := changeSecret(txn, index, s, c.Date); e != nil {
		return e
	}
	return &Result{ARN: s.ARN, Name: s.Name, VersionID: c.VersionID}
}

// selfName is this region's name ("" before bootstrap).
func selfName(txn *memdb.Txn) string {
	if r := RegionRecord(txn); r != nil {
		return r.Name
	}
	return ""
}

// hasReplicaOf reports whether any secret here is a replica of region's.
func hasReplicaOf(txn *memdb.Txn, region string) bool {
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return false
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if obj.(*Secret).PrimaryRegion == region {
			return true
		}
	}
	return false
}
