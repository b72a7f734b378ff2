// Package check holds the jepsen harness's history format and its
// checkers. Every checker is a pure function over the saved files (or
// their decoded contents), so a run can be re-checked offline and each
// checker is unit-tested with hand-made bad histories.
package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Operation kinds.
const (
	KindPut    = "put"    // PutSecretValue (or the CreateSecret that made a register secret)
	KindGet    = "get"    // GetSecretValue by VersionStage (Stage; "" means AWSCURRENT)
	KindCreate = "create" // CreateSecret of the set workload
	KindMove   = "move"   // UpdateSecretVersionStage of Stage from RemoveFrom to MoveTo
)

// Staging labels the workloads use.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// Statuses of a completed operation.
const (
	StatusOK      = "ok"      // 2xx, or a definite answer of a read
	StatusFail    = "fail"    // certainly did not happen (X-Coffer-Outcome: not-applied, connection refused)
	StatusUnknown = "unknown" // may or may not have happened
)

// Op is one client operation of history.jsonl: invocation and completion
// in one record. Times are nanoseconds since the run's base time.
type Op struct {
	ID      int64  `json:"id"`
	Process int    `json:"process"` // a new process after every unknown outcome
	Node    string `json:"node"`    // node the client talked to
	Kind    string `json:"kind"`
	Secret  string `json:"secret"`
	// Put: ClientRequestToken (becomes the VersionId) and the unique value.
	Token string `json:"token,omitempty"`
	Value string `json:"value,omitempty"`
	Call  int64  `json:"call"`
	Ret   int64  `json:"ret"`

	Status    string `json:"status"`
	VersionID string `json:"version_id,omitempty"` // answer of a put or get
	Read      string `json:"read,omitempty"`       // value a get returned
	Err       string `json:"err,omitempty"`        // AWS error type or transport error
	Outcome   string `json:"outcome,omitempty"`    // X-Coffer-Outcome of an error
	Index     string `json:"index,omitempty"`      // X-Coffer-Index
	Final     bool   `json:"final,omitempty"`      // a read of the final phase
	// Get and move: the staging label asked for ("" on a get means
	// AWSCURRENT). Move: RemoveFromVersionId and MoveToVersionId.
	Stage string `json:"stage,omitempty"`
	// ByVersion: a get by VersionId instead of by label.
	ByVersion  string `json:"by_version,omitempty"`
	RemoveFrom string `json:"remove_from,omitempty"`
	MoveTo     string `json:"move_to,omitempty"`
	// Stages is the VersionStages a get or put returned. nil (field
	// absent, as in histories recorded before it existed) means not
	// recorded; an answer without stages is recorded as [].
	Stages []string `json:"stages"`
	// RetryOf is, on a put that resends an earlier put's token and value
	// after an unknown outcome, the id of the first attempt.
	RetryOf int64 `json:"retry_of,omitempty"`
	// Churn: a DeleteSecret with ForceDeleteWithoutRecovery; a
	// DescribeSecret that showed DeletedDate.
	Force     bool `json:"force,omitempty"`
	Scheduled bool `json:"scheduled,omitempty"`
	// Region-failover runs: the region the client signed for (and whose
	// server it talked to); a describe's PrimaryRegion; the versions a
	// describe (VersionIdsToStages: labelled versions only) or a
	// list-versions (ListSecretVersionIds with IncludeDeprecated: every
	// version) returned, id -> stages; an error's message.
	Region   string              `json:"region,omitempty"`
	Primary  string              `json:"primary,omitempty"`
	Versions map[string][]string `json:"versions,omitempty"`
	Message  string              `json:"message,omitempty"`
	// Rotating is, on a describe of a rotation run, the VersionId of
	// the rotation in flight (Coffer's CofferRotationStatus member).
	Rotating string `json:"rotating,omitempty"`
}

// ReadStage is the label a get asked for.
func (o Op) ReadStage() string {
	if o.Stage == "" {
		return StageCurrent
	}
	return o.Stage
}

// FinalRead is one record of final.jsonl: after healing, whether a
// version (by VersionId) or a set element (by name) exists.
type FinalRead struct {
	Kind      string `json:"kind"` // "version" or "exists"
	Node      string `json:"node"`
	Secret    string `json:"secret"`
	VersionID string `json:"version_id,omitempty"`
	Found     bool   `json:"found"`
	Value     string `json:"value,omitempty"`
	Err       string `json:"err,omitempty"` // the read itself failed: nothing known
	// A version read: its VersionStages (nil: not recorded) and the
	// X-Coffer-Index it was served at.
	Stages []string `json:"stages"`
	Index  string   `json:"index,omitempty"`
	// Created is the version's CreatedDate, Unix milliseconds.
	Created int64 `json:"created_ms,omitempty"`
	// Region is the region read (region-failover runs).
	Region string `json:"region,omitempty"`
}

// Event is one record of nemesis.jsonl.
type Event struct {
	Time   int64  `json:"time"`
	Phase  string `json:"phase"` // "start" or "stop"
	Fault  string `json:"fault"` // kill, kill-leader, pause, partition-leader
	Node   string `json:"node,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Verdicts, ordered by badness for Worst.
const (
	Valid   = "VALID"
	Unknown = "UNKNOWN"
	Invalid = "INVALID"
)

// Worst returns the worst of the verdicts.
func Worst(vs ...string) string {
	out := Valid
	for _, v := range vs {
		switch {
		case v == Invalid:
			return Invalid
		case v == Unknown:
			out = Unknown
		}
	}
	return out
}

// Result is one checker's verdict.
type Result struct {
	Name    string   `json:"name"`
	Verdict string   `json:"verdict"`
	Detail  string   `json:"detail"`
	Errors  []string `json:"errors,omitempty"` // first few offending operations
}

func (r *Result) addError(s string) {
	if len(r.Errors) < 20 {
		r.Errors = append(r.Errors, s)
	}
}

// ReadJSONL decodes a file of JSON lines.
func ReadJSONL[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeJSONL[T](f)
}

// DecodeJSONL decodes JSON lines from r.
func DecodeJSONL[T any](r io.Reader) ([]T, error) {
	var out []T
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var v T
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, v)
	}
}

// Files is a run's saved history.
type Files struct {
	Ops    []Op
	Final  []FinalRead
	Events []Event
	// Leaders holds the leadership claims of the nodes' logs
	// (nodes/<id>/coffer.log); LogsRead counts the logs read.
	Leaders  []LeaderClaim
	LogsRead int
	// Panics are the crash lines of the same logs.
	Panics []PanicLine
	// Statuses are the /v1/cluster/status polls after healing
	// (status.jsonl; nil in older runs).
	Statuses []NodeStatus
	// Disk is the plaintext scan of the nodes' data (plaintext.json;
	// nil in older runs).
	Disk *DiskScan
	// RaftLogs are the nodes' Raft logs dumped after they stopped
	// (raftlog/<node-id>.jsonl; nil in older runs).
	RaftLogs map[string][]RaftEntry
	// Samples are the /v1/health polls during the main phase
	// (samples.jsonl; nil in older runs).
	Samples []Sample
	// Failover is the region-failover run's record (failover.json; nil
	// in other runs) and ReplStatus its replication status polls
	// (replstatus.jsonl).
	Failover   *FailoverRun
	ReplStatus []ReplSample
	// Rotation is the rotation run's record (rotation.json; nil in other
	// runs) and Hook the requests its webhook received (hook.jsonl).
	Rotation *RotationRun
	Hook     []HookCall
}

// Load reads history.jsonl, final.jsonl, nemesis.jsonl, status.jsonl, samples.jsonl,
// plaintext.json, failover.json, replstatus.jsonl, rotation.json, hook.jsonl, raftlog/*.jsonl and nodes/*/coffer.log from a results
// folder. Missing files other than the history are empty.
func Load(dir string) (Files, error) {
	var f Files
	var err error
	if f.Ops, err = ReadJSONL[Op](filepath.Join(dir, "history.jsonl")); err != nil {
		return f, err
	}
	if f.Final, err = ReadJSONL[FinalRead](filepath.Join(dir, "final.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if f.Events, err = ReadJSONL[Event](filepath.Join(dir, "nemesis.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if f.Statuses, err = ReadJSONL[NodeStatus](filepath.Join(dir, "status.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if f.Samples, err = ReadJSONL[Sample](filepath.Join(dir, "samples.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "plaintext.json")); err == nil {
		var d DiskScan
		if err := json.Unmarshal(b, &d); err != nil {
			return f, fmt.Errorf("plaintext.json: %w", err)
		}
		f.Disk = &d
	} else if !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "failover.json")); err == nil {
		var fr FailoverRun
		if err := json.Unmarshal(b, &fr); err != nil {
			return f, fmt.Errorf("failover.json: %w", err)
		}
		f.Failover = &fr
	} else if !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "rotation.json")); err == nil {
		var rr RotationRun
		if err := json.Unmarshal(b, &rr); err != nil {
			return f, fmt.Errorf("rotation.json: %w", err)
		}
		f.Rotation = &rr
	} else if !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if f.Hook, err = ReadJSONL[HookCall](filepath.Join(dir, "hook.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if f.ReplStatus, err = ReadJSONL[ReplSample](filepath.Join(dir, "replstatus.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if f.RaftLogs, err = LoadRaftLogs(dir); err != nil {
		return f, err
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "nodes", "*", "coffer.log"))
	sort.Strings(logs)
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			return f, err
		}
		node := filepath.Base(filepath.Dir(path))
		claims, err := ParseLeaderLog(node, bytes.NewReader(b))
		if err != nil {
			return f, fmt.Errorf("%s: %w", path, err)
		}
		f.Leaders = append(f.Leaders, claims...)
		panics, err := ScanLogForPanics(node, bytes.NewReader(b))
		if err != nil {
			return f, fmt.Errorf("%s: %w", path, err)
		}
		f.Panics = append(f.Panics, panics...)
		f.LogsRead++
	}
	return f, nil
}

// Writer appends JSON lines; safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Write appends one record.
func (w *Writer) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w.Write(b)
	return w.w.WriteByte('\n')
}

// Flush writes buffered records.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Flush()
}
