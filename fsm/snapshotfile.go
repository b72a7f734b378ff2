package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The snapshot file of `coffer operator snapshot save`: a magic line, a
// JSON header line, then the state stream (InspectSnapshot) exactly as the
// node's snapshot holds it, so the file stays encrypted. The header
// records where the state comes from and the stream's size and SHA-256,
// which a reader checks before it trusts a byte of it.

// SnapshotFileMagic is a snapshot file's first line.
const SnapshotFileMagic = "COFFER-SNAPSHOT 1"

// SnapshotFileHeader is a snapshot file's second line.
type SnapshotFileHeader struct {
	Region    string `json:"region"`
	AccountID string `json:"account_id"`
	Node      string `json:"node"`
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
	Created   string `json:"created"` // RFC 3339, UTC
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
}

// WriteSnapshotFile writes a snapshot file: hdr (whose Size and SHA256
// must describe body) and body.
func WriteSnapshotFile(w io.Writer, hdr SnapshotFileHeader, body io.Reader) error {
	line, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s\n%s\n", SnapshotFileMagic, line); err != nil {
		return err
	}
	n, err := io.Copy(w, body)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("snapshot body is %d bytes, the header says %d", n, hdr.Size)
	}
	return err
}

// maxSnapshotHeader bounds the header line a reader accepts.
const maxSnapshotHeader = 4096

// ReadSnapshotFile reads a snapshot file, checks its size and checksum,
// and returns the header and the state stream. A file that is not a
// snapshot, is truncated or was changed is an error that says which.
func ReadSnapshotFile(r io.Reader) (SnapshotFileHeader, []byte, error) {
	var hdr SnapshotFileHeader
	br := bufio.NewReader(r)
	magic, err := br.ReadString('\n')
	if err != nil || strings.TrimSuffix(magic, "\n") != SnapshotFileMagic {
		return hdr, nil, errors.New("not a Coffer snapshot file (its first line is not " + SnapshotFileMagic + ")")
	}
	line, err := readLine(br, maxSnapshotHeader)
	if err != nil {
		return hdr, nil, fmt.Errorf("snapshot header: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		return hdr, nil, fmt.Errorf("snapshot header: %w", err)
	}
	if hdr.Size < 0 || hdr.Region == "" || len(hdr.SHA256) != 64 {
		return hdr, nil, errors.New("snapshot header: region, size or checksum missing")
	}
	body, err := io.ReadAll(io.LimitReader(br, hdr.Size+1))
	if err != nil {
		return hdr, nil, err
	}
	switch {
	case int64(len(body)) < hdr.Size:
		return hdr, nil, fmt.Errorf("snapshot file is truncated: %d of %d bytes", len(body), hdr.Size)
	case int64(len(body)) > hdr.Size:
		return hdr, nil, fmt.Errorf("snapshot file has bytes after the %d its header announces", hdr.Size)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hdr.SHA256 {
		return hdr, nil, errors.New("snapshot file is damaged: its checksum does not match its header")
	}
	return hdr, body, nil
}

func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("longer than %d bytes", limit)
		}
		if !isPrefix {
			return line, nil
		}
	}
}
