package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Snapshot format: a header, then records, each a record type followed by
// its msgpack body, ending with recordEnd. Record types are append only;
// each table's is declared in snapshotTables (schema.go).
type recordType uint8

const recordEnd recordType = 0

const snapshotVersion = 1

type snapshotHeader struct {
	Version int
	Index   uint64 // the FSM's applied index when the snapshot was taken
	// TombstonesCompactedBefore is the change feed's compaction mark (the
	// metaCompacted row; TombstonesCompactedBefore). Omitted while 0, so
	// the header of a state that never compacted is byte for byte what it
	// was before the field existed. A binary older than record type 4
	// refuses a snapshot holding tombstones (unknown record type): a
	// downgrade fails loudly rather than dropping them.
	TombstonesCompactedBefore uint64 `codec:",omitempty"`
}

type record struct {
	Type recordType
	Body []byte
}

type snapshot struct {
	txn   *memdb.Txn
	index uint64
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	if err := writeState(w, s.txn, s.index); err != nil {
		sink.Cancel()
		return err
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// writeState streams the state of a read transaction. Tables are walked in
// index order, so equal states produce equal bytes: the state digest is a
// hash of this stream.
func writeState(w io.Writer, txn *memdb.Txn, index uint64) error {
	enc := codec.NewEncoder(w, msgpackHandle)
	hdr := &snapshotHeader{Version: snapshotVersion, Index: index, TombstonesCompactedBefore: getMeta(txn, metaCompacted)}
	if err := enc.Encode(hdr); err != nil {
		return err
	}
	emit := func(t recordType, v any) error {
		var body []byte
		if err := codec.NewEncoderBytes(&body, msgpackHandle).Encode(v); err != nil {
			return err
		}
		return enc.Encode(&record{Type: t, Body: body})
	}
	for _, tbl := range snapshotTables {
		it, err := txn.Get(tbl.table, "id")
		if err != nil {
			return err
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if err := emit(tbl.record, obj); err != nil {
				return err
			}
		}
	}
	return enc.Encode(&record{Type: recordEnd})
}

// readSnapshot fills db from a stream written by writeState and returns the
// index it was taken at.
func readSnapshot(r io.Reader, db *memdb.MemDB) (uint64, error) {
	dec := codec.NewDecoder(bufio.NewReader(r), msgpackHandle)
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return 0, fmt.Errorf("header: %w", err)
	}
	if hdr.Version != snapshotVersion {
		return 0, fmt.Errorf("unsupported snapshot version %d", hdr.Version)
	}
	tables := make(map[recordType]snapshotTable, len(snapshotTables))
	for _, tbl := range snapshotTables {
		tables[tbl.record] = tbl
	}
	txn := db.Txn(true)
	defer txn.Abort()
	for {
		var rec record
		if err := dec.Decode(&rec); err != nil {
			return 0, fmt.Errorf("record: %w", err)
		}
		if rec.Type == recordEnd {
			setIndex(txn, hdr.Index)
			if hdr.TombstonesCompactedBefore != 0 {
				setMeta(txn, metaCompacted, hdr.TombstonesCompactedBefore)
			}
			txn.Commit()
			return hdr.Index, nil
		}
		tbl, ok := tables[rec.Type]
		if !ok {
			return 0, fmt.Errorf("unknown record type %d", rec.Type)
		}
		obj := tbl.new()
		if err := codec.NewDecoderBytes(rec.Body, msgpackHandle).Decode(obj); err != nil {
			return 0, fmt.Errorf("record type %d: %w", rec.Type, err)
		}
		if err := txn.Insert(tbl.table, obj); err != nil {
			return 0, err
		}
	}
}

// Digest returns a SHA-256 of the whole state and the index it reflects.
// Nodes at the same index must report the same digest; the jepsen harness
// and /v1/cluster/status compare them.
func (f *FSM) Digest() (string, uint64, error) {
	txn, index := f.ReadTxn()
	h := sha256.New()
	if err := writeState(h, txn, index); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), index, nil
}

// SnapshotInfo summarizes a state stream (a Raft snapshot, or the body of
// `coffer operator snapshot save`) without restoring it.
type SnapshotInfo struct {
	Index     uint64         `json:"index"`
	Region    string         `json:"region"`
	AccountID string         `json:"account_id"`
	Records   map[string]int `json:"records"` // by table
	Versions  int            `json:"versions"`
	// Sealed is always true: values, data keys and the keyring are in the
	// stream only as ciphertext (the keyring sealed under the root key).
	Sealed bool `json:"sealed"`
	// RegionRecord is the region's record (its sealed keyring), for a
	// restore to check before it replaces a state.
	RegionRecord *Region `json:"-"`
}

// InspectSnapshot reads a state stream written by a snapshot and counts
// what it holds, checking that every record decodes; it never panics on
// a damaged or hostile stream.
func InspectSnapshot(r io.Reader) (info SnapshotInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("damaged snapshot: %v", p)
		}
	}()
	dec := codec.NewDecoder(bufio.NewReader(r), msgpackHandle)
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return info, fmt.Errorf("header: %w", err)
	}
	if hdr.Version != snapshotVersion {
		return info, fmt.Errorf("unsupported snapshot version %d", hdr.Version)
	}
	tables := make(map[recordType]snapshotTable, len(snapshotTables))
	for _, tbl := range snapshotTables {
		tables[tbl.record] = tbl
	}
	info = SnapshotInfo{Index: hdr.Index, Records: map[string]int{}, Sealed: true}
	for {
		var rec record
		if err := dec.Decode(&rec); err != nil {
			return info, fmt.Errorf("record: %w", err)
		}
		if rec.Type == recordEnd {
			return info, nil
		}
		tbl, ok := tables[rec.Type]
		if !ok {
			return info, fmt.Errorf("unknown record type %d", rec.Type)
		}
		obj := tbl.new()
		if err := codec.NewDecoderBytes(rec.Body, msgpackHandle).Decode(obj); err != nil {
			return info, fmt.Errorf("record type %d: %w", rec.Type, err)
		}
		info.Records[tbl.table]++
		switch o := obj.(type) {
		case *Region:
			info.Region, info.AccountID, info.RegionRecord = o.Name, o.AccountID, o
		case *Secret:
			info.Versions += len(o.Versions)
		}
	}
}

// Dump writes the current state as a snapshot stream and returns the
// index it reflects (a region without Raft has no snapshots to copy).
func (f *FSM) Dump(w io.Writer) (uint64, error) {
	txn, index := f.ReadTxn()
	return index, writeState(w, txn, index)
}
