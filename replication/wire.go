package replication

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cofferhq/coffer/fsm"
)

// What travels between regions, on the cluster port's replication
// connections (mutual TLS outside coffer dev): one shipment, then one
// answer, each a frame of a 4-byte big-endian length and JSON.

// maxFrame bounds a frame a peer may make this node read.
const maxFrame = 64 << 20

// shipment is one batch from a primary region to a replica region.
type shipment struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Forwarded is set by a server of the target region relaying the
	// shipment to its leader.
	Forwarded bool            `json:"forwarded,omitempty"`
	Secrets   []shippedSecret `json:"secrets,omitempty"`
	// Drops are primary ARNs whose replicas in the target region go.
	Drops []string `json:"drops,omitempty"`
	// Next is the primary's index the shipment brings the replica to.
	Next uint64 `json:"next"`
	// Promoted is a notice the other way, from a replica region (Source)
	// to the primary region (Target): the replicas of these primary ARNs
	// were promoted there (StopReplicationToReplica), so the primary stops
	// replicating them to Source.
	Promoted []string `json:"promoted,omitempty"`
}

// shippedSecret is a primary secret's state, as of SourceIndex.
type shippedSecret struct {
	PrimaryARN      string    `json:"arn"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	KmsKeyID        string    `json:"kms_key_id,omitempty"` // the replica's key, in the target region
	Tags            []fsm.Tag `json:"tags,omitempty"`
	TagsEverSet     bool      `json:"tags_ever_set,omitempty"`
	CreatedDate     int64     `json:"created"`
	LastChangedDate int64     `json:"changed"`
	DeletedDate     int64     `json:"deleted,omitempty"`
	DeletionDate    int64     `json:"deletion,omitempty"`
	Type            string    `json:"type,omitempty"`
	ResourcePolicy  string    `json:"policy,omitempty"`
	SourceIndex     uint64    `json:"index"`
	Epoch           uint64    `json:"epoch,omitempty"`
	// Regions are the primary's region and its replica regions, each
	// with its key there: a promoted replica replicates to the others.
	Regions  []shippedRegion  `json:"regions,omitempty"`
	Force    bool             `json:"force,omitempty"`
	Versions []shippedVersion `json:"versions"`
	// Rotation is the primary's rotation configuration and dates, without
	// the rotation in flight (fsm.Rotation.Shipped): a replica shows it, and
	// a promoted replica rotates on the same schedule.
	Rotation *fsm.Rotation `json:"rotation,omitempty"`
}

// shippedVersion is one version. Ciphertext is the value as the primary
// holds it and DataKey its data key sealed by HPKE to the target region
// (crypto.ShipDataKey); both are nil when the replica has the value
// already, and for a placeholder.
type shippedVersion struct {
	VersionID   string   `json:"id"`
	Stages      []string `json:"stages,omitempty"`
	CreatedDate int64    `json:"created"`
	Binary      bool     `json:"binary,omitempty"`
	PrimaryARN  string   `json:"primary_arn"`
	Placeholder bool     `json:"placeholder,omitempty"`
	Ciphertext  []byte   `json:"ciphertext,omitempty"`
	DataKey     []byte   `json:"data_key,omitempty"`
	// Conflict marks a version kept from a region that was superseded
	// by a promotion (fsm.Version.Conflict).
	Conflict *fsm.Conflict `json:"conflict,omitempty"`
}

// shippedRegion is one region of a replicated secret.
type shippedRegion struct {
	Region   string `json:"region"`
	KmsKeyID string `json:"kms_key_id,omitempty"`
}

// answer is the replica region's reply to a shipment.
type answer struct {
	Region string `json:"region"`
	// Error refuses the whole shipment (nothing was applied).
	Error    string            `json:"error,omitempty"`
	Outcomes []fsm.ReplOutcome `json:"outcomes,omitempty"`
}

func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > maxFrame {
		return fmt.Errorf("replication frame of %d bytes exceeds %d", len(body), maxFrame)
	}
	buf := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	_, err = w.Write(append(buf, body...))
	return err
}

func readFrame(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return fmt.Errorf("replication frame of %d bytes exceeds %d", size, maxFrame)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// ReplicaARN is the ARN of a primary secret's replica in region: the
// primary's with the region replaced (the suffix stays, as AWS does).
func ReplicaARN(primaryARN, region string) (string, error) {
	parts := strings.SplitN(primaryARN, ":", 5)
	if len(parts) != 5 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[3] == "" {
		return "", fmt.Errorf("not a secret ARN: %q", primaryARN)
	}
	parts[3] = region
	return strings.Join(parts, ":"), nil
}

// accountOf is the account in a secret ARN.
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

var errNoLeader = errors.New("the region has no leader")
