package fsm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Rotation as state (docs/rotation.md). A secret's Rotation holds what
// RotateSecret configured and the rotation in flight; the leader's
// scheduler (package rotation) drives the rotation step by step and
// records each outcome through Raft (RotationProgress), so a new leader
// resumes where the old one stopped. Dates and the schedule's next window
// are computed by the node that writes a command: the FSM never reads a
// clock or parses a schedule.

// Rotation is a secret's rotation configuration and progress.
type Rotation struct {
	// Enabled is RotationEnabled: the schedule runs. RotateSecret with
	// rules sets it, CancelRotateSecret clears it; the configuration
	// stays for DescribeSecret either way.
	Enabled bool
	// Rotator is the ARN of the registered rotator (RotationLambdaARN).
	Rotator string
	// The schedule (RotationRules); zero values are unset.
	AfterDays  int64  `codec:",omitempty"`
	Expression string `codec:",omitempty"`
	Duration   string `codec:",omitempty"`
	// External and RoleARN are ExternalSecretRotationMetadata and
	// ExternalSecretRotationRoleArn, stored and echoed.
	External []Tag  `codec:",omitempty"`
	RoleARN  string `codec:",omitempty"`
	// LastRotatedDate is when a rotation last finished.
	LastRotatedDate int64 `codec:",omitempty"`
	// NextStart is when the scheduler starts the next rotation (a moment
	// inside the next window), NextDate the window's end
	// (NextRotationDate); both 0 while the schedule does not run.
	NextStart int64 `codec:",omitempty"`
	NextDate  int64 `codec:",omitempty"`
	// Token is the version id of the rotation in flight ("" when none),
	// Step the step it runs next ("" is the first, createSecret).
	Token string `codec:",omitempty"`
	Step  string `codec:",omitempty"`
	// Attempts counts the failed runs of the rotation in flight; LastError
	// is the last failure (kept after a success for DescribeSecret until
	// the next rotation starts), LastErrorDate when; RetryAt is when the
	// scheduler tries again.
	Attempts      int    `codec:",omitempty"`
	LastError     string `codec:",omitempty"`
	LastErrorDate int64  `codec:",omitempty"`
	RetryAt       int64  `codec:",omitempty"`
}

// Rotating reports whether the scheduler has anything to do for the
// secret: a schedule that runs or a rotation in flight.
func (r *Rotation) Rotating() bool { return r != nil && (r.Enabled || r.Token != "") }

// Shipped is what of a primary's rotation a replica region gets: the
// configuration and the dates, not the rotation in flight, which only the
// primary's scheduler runs (nil for nil).
func (r *Rotation) Shipped() *Rotation {
	if r == nil {
		return nil
	}
	return &Rotation{Enabled: r.Enabled, Rotator: r.Rotator, AfterDays: r.AfterDays, Expression: r.Expression,
		Duration: r.Duration, External: slices.Clone(r.External), RoleARN: r.RoleARN,
		LastRotatedDate: r.LastRotatedDate, NextStart: r.NextStart, NextDate: r.NextDate}
}

// InRegion is the rotation with its rotator's ARN moved to region: a
// rotator is registered per region, and a promoted replica rotates with
// the one of the same name in its own region.
func (r *Rotation) InRegion(region string) *Rotation {
	if r == nil {
		return nil
	}
	c := r.clone()
	// arn:aws:lambda:REGION:ACCOUNT:function:NAME
	if parts := strings.SplitN(c.Rotator, ":", 5); len(parts) == 5 && parts[0] == "arn" {
		parts[3] = region
		c.Rotator = strings.Join(parts, ":")
	}
	return c
}

func (r *Rotation) clone() *Rotation {
	if r == nil {
		return nil
	}
	c := *r
	c.External = slices.Clone(r.External)
	return &c
}

// Rotator is a registered rotator (coffer rotator create): what a
// secret's RotationLambdaARN names. Config holds the rotator's settings
// (never a credential: a webhook's signing key is a secret it names).
type Rotator struct {
	// ARN is the rotator's Lambda-style ARN,
	// arn:aws:lambda:REGION:ACCOUNT:function:NAME; Name its last part.
	ARN         string
	Name        string
	Type        string
	Config      map[string]string `codec:",omitempty"`
	Description string            `codec:",omitempty"`
	CreatedDate int64
	ModifyIndex uint64
}

const tableRotators = "rotators"

func rotationSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableRotators: {Name: tableRotators, Indexes: map[string]*memdb.IndexSchema{
			"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ARN"}},
			"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
	}
}

// rotatingIndex indexes the secrets the scheduler looks at
// (Rotation.Rotating), by ARN, so it never scans every secret. It is
// sparse: a secret that does not rotate has no entry (AllowMissing), so
// it costs neither memory nor index work.
var rotatingIndex = &memdb.IndexSchema{Name: "rotating", Unique: true, AllowMissing: true, Indexer: rotatingIndexer{}}

type rotatingIndexer struct{}

func (rotatingIndexer) FromObject(obj any) (bool, []byte, error) {
	s := obj.(*Secret)
	if !s.Rotation.Rotating() {
		return false, nil, nil
	}
	return true, []byte(s.ARN + "\x00"), nil
}

// FromArgs takes no argument: the index is only ever listed whole.
func (rotatingIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("the rotating index takes no argument, got %d", len(args))
	}
	return nil, nil
}

// RotatingSecrets lists the secrets with a schedule that runs or a
// rotation in flight.
func RotatingSecrets(txn *memdb.Txn) ([]*Secret, error) {
	it, err := txn.Get(tableSecrets, "rotating")
	if err != nil {
		return nil, err
	}
	var out []*Secret
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Secret))
	}
	return out, nil
}

// Rotators lists the registered rotators by name.
func Rotators(txn *memdb.Txn) ([]*Rotator, error) {
	it, err := txn.Get(tableRotators, "name")
	if err != nil {
		return nil, err
	}
	var out []*Rotator
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Rotator))
	}
	return out, nil
}

// RotatorByARN returns the rotator with the ARN, or nil.
func RotatorByARN(txn *memdb.Txn, arn string) (*Rotator, error) {
	raw, err := txn.First(tableRotators, "id", arn)
	if raw == nil || err != nil {
		return nil, err
	}
	return raw.(*Rotator), nil
}

// RotatorByName returns the rotator with the name, or nil.
func RotatorByName(txn *memdb.Txn, name string) (*Rotator, error) {
	raw, err := txn.First(tableRotators, "name", name)
	if raw == nil || err != nil {
		return nil, err
	}
	return raw.(*Rotator), nil
}
