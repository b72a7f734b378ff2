package fsm

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/cofferhq/coffer/crypto"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// CommandType is the first byte of every Raft log entry Coffer writes.
//
// Part of the log format: append only, never reuse or renumber; 0 is
// invalid. Fields of a command struct are only ever added, so a log written
// by an older binary still decodes. A type with IgnorableFlag (0x80) set
// may be skipped by a binary that does not know it; see IgnorableFlag.
//
// To add a command: a constant here (the next free number), its struct,
// and one register call in the init of the apply_*.go file that applies
// it. That is the whole declaration: Decode, Encode, String and Apply read
// the command table.
type CommandType uint8

const (
	CmdInitRegion     CommandType = 1
	CmdCreateSecret   CommandType = 2
	CmdPutSecretValue CommandType = 3
	CmdDeleteSecret   CommandType = 4
	CmdRestoreSecret  CommandType = 5
	CmdNoop           CommandType = 6
	CmdResetRegion    CommandType = 7

	CmdUpdateSecret             CommandType = 8
	CmdUpdateSecretVersionStage CommandType = 9
	CmdTagResource              CommandType = 10
	CmdUntagResource            CommandType = 11
	CmdPutResourcePolicy        CommandType = 12
	CmdDeleteResourcePolicy     CommandType = 13
	CmdPurgeSecrets             CommandType = 14
	CmdRecordAccess             CommandType = 15
	CmdCompactTombstones        CommandType = 16
)

// IgnorableFlag marks a command type that a binary which does not know it
// may skip (Consul's IgnoreUnknownTypeFlag): such an entry advances the
// applied index and changes nothing. Any other type a binary does not know
// stops it from applying (FSM.Apply): the log was written by a newer
// binary, and skipping the entry would let this node's state diverge. Only
// a command whose absence leaves every later command's outcome unchanged
// (a hint, a statistic) may carry the flag; none does yet.
const IgnorableFlag CommandType = 0x80

// Ignorable reports whether a binary that does not know t may skip it.
func (t CommandType) Ignorable() bool { return t&IgnorableFlag != 0 }

// Known reports whether this binary has t in its command table.
func (t CommandType) Known() bool {
	_, ok := commands[t]
	return ok
}

// CommandTypes lists the command types this binary knows, in numeric order.
func CommandTypes() []CommandType {
	return slices.Sorted(maps.Keys(commands))
}

func (t CommandType) String() string {
	if c, ok := commands[t]; ok {
		return c.name
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// command is one entry of the command table: everything the FSM knows about
// a command type.
type command struct {
	name string
	// new returns a pointer to a zero command struct, for Decode.
	new func() any
	// apply applies a command decoded by new's struct at a log index; it
	// returns a *Result or an *apierr.Error.
	apply func(txn *memdb.Txn, index uint64, cmd any) any
	// is reports whether cmd has the type new returns, for Encode.
	is func(cmd any) bool
}

// commands is the command table. Each command is declared once, by a
// register call in the init of the file that applies it (apply_*.go); the
// type byte itself is one of the CommandType constants above, which are
// the log format. Nothing else lists the commands: Decode, String, Encode
// and Apply all read this table.
var commands = map[CommandType]command{}

// register declares a command: its type byte, its name, its struct (T; the
// log entry body decodes into a *T) and the function that applies it at a
// log index. A type byte or a name registered twice is a programming error
// and panics at init.
func register[T any](t CommandType, name string, apply func(txn *memdb.Txn, index uint64, cmd *T) any) {
	if t == 0 {
		panic("fsm: command type 0 is invalid")
	}
	if prev, dup := commands[t]; dup {
		panic(fmt.Sprintf("fsm: command type %d registered twice (%s, %s)", uint8(t), prev.name, name))
	}
	for other, c := range commands {
		if c.name == name {
			panic(fmt.Sprintf("fsm: command name %s registered twice (types %d and %d)", name, uint8(other), uint8(t)))
		}
	}
	commands[t] = command{
		name:  name,
		new:   func() any { return new(T) },
		apply: func(txn *memdb.Txn, index uint64, cmd any) any { return apply(txn, index, cmd.(*T)) },
		is:    func(cmd any) bool { _, ok := cmd.(*T); return ok },
	}
}

func init() {
	register(CmdNoop, "Noop", func(*memdb.Txn, uint64, *Noop) any { return &Result{} })
}

// InitRegion bootstraps a region: its keyring and root access key. Applied
// once, by the first leader.
type InitRegion struct {
	Region        string
	AccountID     string
	KEKID         string
	SealedKeyring []byte
	RootKey       AccessKey
	Date          int64
}

// NewVersion is a version written by CreateSecret or PutSecretValue.
type NewVersion struct {
	VersionID string
	Binary    bool
	Value     crypto.Envelope
	Digest    []byte
	// PrimaryARN is the ARN the value's AAD binds (Version.PrimaryARN).
	PrimaryARN string `codec:",omitempty"`
}

// CreateSecret creates a secret, with a first version when Version is set.
type CreateSecret struct {
	ARN         string
	Name        string
	Description string
	KmsKeyID    string
	Tags        []Tag
	Version     *NewVersion
	Date        int64
	Type        string
}

// PutSecretValue adds a version to the secret with this ARN and moves the
// labels in Stages to it (nil Stages means AWSCURRENT).
type PutSecretValue struct {
	ARN     string
	Version NewVersion
	Stages  []string
	Date    int64
}

// DeleteSecret schedules the secret for deletion at DeletionDate, or removes
// it now when Force is set.
type DeleteSecret struct {
	ARN          string
	Force        bool
	DeletionDate int64
	Date         int64
}

// RestoreSecret cancels a scheduled deletion.
type RestoreSecret struct {
	ARN  string
	Date int64
}

// Noop is applied by a new leader so that every entry from then on reaches
// the FSM, which keeps the FSM's applied index equal to the commit index
// that read-index waits for.
type Noop struct {
	Term uint64
}

// ResetRegion empties a region: every secret goes, in one transaction;
// the region record (keyring, account) and the access keys stay. Only
// `coffer dev` writes it (POST /v1/dev/reset); Region must name the region
// it is applied to.
type ResetRegion struct {
	Region string
	Date   int64
}

// UpdateSecret changes a secret's metadata and, when Version is set, adds
// a value exactly as PutSecretValue with the default stages. A nil field
// leaves that attribute as it is; a pointer to "" clears it.
type UpdateSecret struct {
	ARN         string
	Description *string
	KmsKeyID    *string
	Type        *string
	Version     *NewVersion
	Date        int64
}

// UpdateSecretVersionStage moves (or removes) one staging label: off
// RemoveFrom, onto MoveTo; either may be "".
type UpdateSecretVersionStage struct {
	ARN        string
	Stage      string
	RemoveFrom string
	MoveTo     string
	Date       int64
}

// TagResource adds tags, replacing the value of keys the secret has.
type TagResource struct {
	ARN  string
	Tags []Tag
	Date int64
}

// UntagResource removes the tags with these keys; unknown keys are ignored.
type UntagResource struct {
	ARN  string
	Keys []string
	Date int64
}

// PutResourcePolicy attaches a resource policy (validated by the node
// that received the request) to a secret, replacing any other.
type PutResourcePolicy struct {
	ARN    string
	Policy string
	Date   int64
}

// DeleteResourcePolicy removes a secret's resource policy, if any.
type DeleteResourcePolicy struct {
	ARN  string
	Date int64
}

// PurgeSecrets removes for good the secrets with these ARNs whose recovery
// window ended at or before Now. The leader's purge loop writes it; Apply
// re-checks each secret against Now and skips any that is not due (restored,
// re-scheduled, already gone).
type PurgeSecrets struct {
	ARNs []string
	Now  int64
}

// RecordAccess sets LastAccessedDate to Day (midnight UTC, milliseconds) on
// the secrets and versions read that day. Nodes batch the reads they
// served and send one such command now and then; a read never writes.
type RecordAccess struct {
	Day     int64
	Secrets []AccessedSecret
}

// AccessedSecret is a secret and the versions of it that were read.
type AccessedSecret struct {
	ARN        string
	VersionIDs []string
}

// msgpackHandle encodes commands and snapshot records. Canonical sorts map
// keys, so equal states encode to equal bytes (the state digest relies on it).
var msgpackHandle = &codec.MsgpackHandle{}

func init() {
	msgpackHandle.Canonical = true
	msgpackHandle.WriteExt = true
}

// Encode returns the log entry for a command: its type byte, then msgpack.
// cmd must be a pointer to the struct registered for t.
func Encode(t CommandType, cmd any) ([]byte, error) {
	c, ok := commands[t]
	if !ok {
		return nil, fmt.Errorf("encode: unknown command type %d", uint8(t))
	}
	if !c.is(cmd) {
		return nil, fmt.Errorf("encode %s: got a %T, want a %T", t, cmd, c.new())
	}
	var buf bytes.Buffer
	buf.WriteByte(byte(t))
	if err := codec.NewEncoder(&buf, msgpackHandle).Encode(cmd); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return buf.Bytes(), nil
}

// Decode parses a log entry written by Encode. It never panics: a bad entry
// is an error, and so is a type this binary does not know (Apply decides
// what an unknown type means; Decode only parses).
func Decode(buf []byte) (t CommandType, cmd any, err error) {
	if len(buf) == 0 {
		return 0, nil, fmt.Errorf("empty command")
	}
	t = CommandType(buf[0])
	c, ok := commands[t]
	if !ok {
		return t, nil, fmt.Errorf("unknown command type %d", buf[0])
	}
	cmd = c.new()
	defer func() {
		// The msgpack decoder can panic on hostile input (huge lengths);
		// a bad entry must not take the node down.
		if r := recover(); r != nil {
			cmd, err = nil, fmt.Errorf("decode %s: %v", t, r)
		}
	}()
	if err := codec.NewDecoderBytes(buf[1:], msgpackHandle).Decode(cmd); err != nil {
		return t, nil, fmt.Errorf("decode %s: %w", t, err)
	}
	return t, cmd, nil
}
