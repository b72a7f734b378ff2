package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// RaftEntry is one record of raftlog/<node-id>.jsonl: one entry of a
// node's Raft log, read from its raft.db after the nodes stopped. The
// entry's data is never saved, only its SHA-256, the command's type and,
// for the commands that write a version, which version of which secret.
type RaftEntry struct {
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	Type   string `json:"type"`   // raft.LogType name: LogCommand, LogNoop, LogBarrier, LogConfiguration, ...
	SHA256 string `json:"sha256"` // hex SHA-256 of the entry's Data
	// Cmd is a LogCommand's fsm command type (CreateSecret,
	// PutSecretValue, Noop, ...); CmdErr is set when it did not decode.
	Cmd    string `json:"cmd,omitempty"`
	CmdErr string `json:"cmd_err,omitempty"`
	// CreateSecret and PutSecretValue: the version's VersionId (the
	// request's ClientRequestToken), the secret's name (CreateSecret) and
	// ARN (both).
	Token string `json:"token,omitempty"`
	Name  string `json:"name,omitempty"`
	ARN   string `json:"arn,omitempty"`
}

// Command names of the entries that write a version.
const (
	CmdCreateSecret   = "CreateSecret"
	CmdPutSecretValue = "PutSecretValue"
)

// LoadRaftLogs reads raftlog/*.jsonl of a results folder: node id ->
// entries. A folder without raftlog/ (runs recorded before the dump
// existed) gives nil.
func LoadRaftLogs(dir string) (map[string][]RaftEntry, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "raftlog", "*.jsonl"))
	if err != nil || len(paths) == 0 {
		return nil, err
	}
	out := map[string][]RaftEntry{}
	for _, path := range paths {
		es, err := ReadJSONL[RaftEntry](path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[strings.TrimSuffix(filepath.Base(path), ".jsonl")] = es
	}
	return out, nil
}

// RaftLogAgreement is the offline log check of hashicorp/raft's fuzzy
// tests (research §3.1 (1)+(2)) over the nodes' Raft logs dumped after
// they stopped (Files.RaftLogs):
//
//   - Log Matching: an index present in two or more logs has the same
//     term, type and data hash in all of them. Entries compacted away by
//     snapshots are absent and not compared.
//   - Along each log, indexes have no holes and terms never decrease.
//   - Every acknowledged put or create that carries X-Coffer-Index is at
//     that index: every log still holding the index has there a
//     CreateSecret or PutSecretValue of that op's token and secret. An
//     index above every log's last index is INVALID (compaction only
//     drops a prefix, so the acknowledged entry is gone); one below a
//     log's first index is not checkable there.
//
// No raftlog files: UNKNOWN.
func RaftLogAgreement(f Files) Result {
	r := Result{Name: "raft log agreement"}
	if len(f.RaftLogs) == 0 {
		r.Verdict, r.Detail = Unknown, "no raftlog/ files (run recorded before the dump, or the dump failed)"
		return r
	}
	var nodes []string
	for n := range f.RaftLogs {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)

	type held struct {
		node string
		e    RaftEntry
	}
	// The first log (in node order) holding each index, and how many hold it.
	first := map[uint64]held{}
	holders := map[uint64]int{}
	at := map[string]map[uint64]RaftEntry{}
	var lo, hi uint64
	bad := 0
	fail := func(s string) { bad++; r.addError(s) }
	for _, n := range nodes {
		es := append([]RaftEntry(nil), f.RaftLogs[n]...)
		sort.SliceStable(es, func(i, j int) bool { return es[i].Index < es[j].Index })
		at[n] = make(map[uint64]RaftEntry, len(es))
		for i, e := range es {
			if i > 0 {
				p := es[i-1]
				switch {
				case e.Index == p.Index:
					fail(fmt.Sprintf("%s: index %d appears twice", n, e.Index))
					continue
				case e.Index != p.Index+1:
					fail(fmt.Sprintf("%s: hole in the log: index %d follows %d", n, e.Index, p.Index))
				}
				if e.Term < p.Term {
					fail(fmt.Sprintf("%s: term goes back from %d at index %d to %d at index %d", n, p.Term, p.Index, e.Term, e.Index))
				}
			}
			at[n][e.Index] = e
			if lo == 0 || e.Index < lo {
				lo = e.Index
			}
			hi = max(hi, e.Index)
			holders[e.Index]++
			h, ok := first[e.Index]
			if !ok {
				first[e.Index] = held{n, e}
				continue
			}
			if h.e.Term != e.Term || h.e.Type != e.Type || h.e.SHA256 != e.SHA256 {
				fail(fmt.Sprintf("index %d: %s has term %d %s %s, %s has term %d %s %s", e.Index,
					h.node, h.e.Term, describe(h.e), hash12(h.e.SHA256), n, e.Term, describe(e), hash12(e.SHA256)))
			}
		}
	}
	overlap := 0
	for _, c := range holders {
		if c > 1 {
			overlap++
		}
	}

	var acked, found, compacted, unparsable int
	for _, o := range f.Ops {
		// Every acknowledged PutSecretValue and CreateSecret (first
		// attempts and idempotent retries alike) appends its own entry:
		// the server always applies a new command, even for a token it
		// has seen (the FSM then answers as the first call did), and sets
		// X-Coffer-Index to that entry's index (raft's ApplyFuture.Index,
		// server/secrets.go Region.apply, cluster/node.go applyLocal). So
		// no acknowledged write is answered from an older entry, and none
		// needs to be excluded.
		if (o.Kind != KindPut && o.Kind != KindCreate) || o.Status != StatusOK || o.Err != "" || o.Final || o.Index == "" {
			continue
		}
		idx, err := strconv.ParseUint(o.Index, 10, 64)
		if err != nil {
			unparsable++
			continue
		}
		acked++
		if idx > hi {
			fail(fmt.Sprintf("op %d: %s %s %s acknowledged at index %d, beyond every log's last index %d", o.ID, o.Kind, o.Secret, o.Token, idx, hi))
			continue
		}
		if holders[idx] == 0 {
			compacted++
			continue
		}
		ok := true
		for _, n := range nodes {
			e, has := at[n][idx]
			if !has {
				continue
			}
			if !holdsWrite(e, o) {
				ok = false
				fail(fmt.Sprintf("op %d: %s %s token %s acknowledged at index %d, but %s has there %s", o.ID, o.Kind, o.Secret, o.Token, idx, n, describe(e)))
			}
		}
		if ok {
			found++
		}
	}

	r.Detail = fmt.Sprintf("%d logs, indexes %d-%d, %d on 2+ logs; %d of %d acked writes found at their index, %d compacted away",
		len(nodes), lo, hi, overlap, found, acked, compacted)
	if unparsable > 0 {
		r.Detail += fmt.Sprintf(", %d with an unparsable index", unparsable)
	}
	r.Verdict = Valid
	if bad > 0 {
		r.Verdict = Invalid
		r.Detail = fmt.Sprintf("%d disagreements; ", bad) + r.Detail
	}
	return r
}

// holdsWrite reports whether e is the command of acknowledged write o:
// a CreateSecret of o's secret name or a PutSecretValue on an ARN of
// that name, with o's token as its version. (A CreateSecret's ARN is not
// compared: an idempotent repeat carries a fresh ARN suffix the FSM
// ignores.)
func holdsWrite(e RaftEntry, o Op) bool {
	if e.Type != "LogCommand" || e.Token != o.Token {
		return false
	}
	switch e.Cmd {
	case CmdCreateSecret:
		return e.Name == o.Secret
	case CmdPutSecretValue:
		return arnName(e.ARN) == o.Secret
	}
	return false
}

// arnName is the secret name in a Coffer ARN
// (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 chars>).
func arnName(arn string) string {
	_, rest, ok := strings.Cut(arn, ":secret:")
	if !ok || len(rest) < 7 || rest[len(rest)-7] != '-' {
		return ""
	}
	return rest[:len(rest)-7]
}

func describe(e RaftEntry) string {
	s := e.Type
	if e.Cmd != "" {
		s += " " + e.Cmd
	}
	if e.Token != "" {
		s += " token " + e.Token
	}
	return s
}

func hash12(h string) string { return h[:min(12, len(h))] }
