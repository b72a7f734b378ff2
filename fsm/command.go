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
// A command is declared in one file, the apply_*.go file that applies it:
// its constant (the next free number: docs/architecture.md lists them all,
// and register refuses a number or a name used twice), its struct, and one
// register call in that file's init. Decode, Encode, String and Apply read
// the command table; nothing else lists commands.
type CommandType uint8

// CmdNoop is the new leader's barrier entry (cluster/leader.go).
const CmdNoop CommandType = 6

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

// NewVersion is a version written by CreateSecret or PutSecretValue.
type NewVersion struct {
	VersionID string
	Binary    bool
	Value     crypto.Envelope
	Digest    []byte
	// PrimaryARN is the ARN the value's AAD binds (Version.PrimaryARN).
	PrimaryARN string `codec:",omitempty"`
}

// Noop is applied by a new leader so that every entry from then on reaches
// the FSM, which keeps the FSM's applied index equal to the commit index
// that read-index waits for.
type Noop struct {
	Term uint64
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
