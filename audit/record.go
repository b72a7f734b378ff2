// Package audit is Coffer's audit log (docs/audit.md): one JSON line per
// API request or service event, in the shape of a CloudTrail record,
// hash-chained so that a changed, removed or reordered record is found by
// Verify. The server writes a request's record before its answer is sent
// and refuses to serve while the log cannot be written (fail closed).
//
// The log is a directory of segment files, audit-00000001.log,
// audit-00000002.log, …: each record is one line; a segment is closed
// (fsynced) and the next one begun once it passes Options.SegmentBytes.
// Every record carries the node's sequence number (1, 2, 3, … across
// segments and restarts) and previousHash, the hex SHA-256 of the previous
// record's line (its bytes without the newline; 64 zeros for the first
// record ever written).
//
// The package depends on the standard library only.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Values the server and the scheduler put in records.
const (
	// EventVersion is CloudTrail's record version.
	EventVersion = "1.08"
	// SourceSecretsManager is the eventSource of AWS API calls and of the
	// service's own events.
	SourceSecretsManager = "secretsmanager.amazonaws.com"
	// SourceAdmin is the eventSource of Coffer's operator endpoints
	// (/v1/…, signed with the signing name "coffer").
	SourceAdmin = "coffer.admin"
	// TypeAPICall and TypeServiceEvent are the eventType values.
	TypeAPICall      = "AwsApiCall"
	TypeServiceEvent = "AwsServiceEvent"
	// ResourceSecret is the type of a secret in resources.
	ResourceSecret = "AWS::SecretsManager::Secret"
)

// ZeroHash is the previousHash of the first record of a log.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one audit record: the fields of a CloudTrail record
// (shared/spec §8.2), Coffer's node, and the chain fields, which Write
// fills.
type Record struct {
	EventVersion        string          `json:"eventVersion"`
	UserIdentity        Identity        `json:"userIdentity"`
	EventTime           string          `json:"eventTime"`
	EventSource         string          `json:"eventSource"`
	EventName           string          `json:"eventName"`
	AWSRegion           string          `json:"awsRegion"`
	SourceIPAddress     string          `json:"sourceIPAddress"`
	UserAgent           string          `json:"userAgent"`
	ErrorCode           string          `json:"errorCode,omitempty"`
	ErrorMessage        string          `json:"errorMessage,omitempty"`
	RequestParameters   json.RawMessage `json:"requestParameters"`
	ResponseElements    json.RawMessage `json:"responseElements"`
	AdditionalEventData json.RawMessage `json:"additionalEventData,omitempty"`
	RequestID           string          `json:"requestID"`
	EventID             string          `json:"eventID"`
	ReadOnly            bool            `json:"readOnly"`
	Resources           []Resource      `json:"resources,omitempty"`
	EventType           string          `json:"eventType"`
	ManagementEvent     bool            `json:"managementEvent"`
	RecipientAccountID  string          `json:"recipientAccountId"`
	EventCategory       string          `json:"eventCategory"`
	// Node is the id of the node that wrote the record.
	Node string `json:"node"`
	// Sequence numbers the node's records from 1, across segments and
	// restarts; Write sets it.
	Sequence uint64 `json:"sequence"`
	// PreviousHash is the hex SHA-256 of the previous record's line;
	// Write sets it.
	PreviousHash string `json:"previousHash"`
}

// Identity is CloudTrail's userIdentity.
type Identity struct {
	// Type is Root, IAMUser or AWSService.
	Type        string `json:"type,omitempty"`
	PrincipalID string `json:"principalId,omitempty"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	UserName    string `json:"userName,omitempty"`
	// InvokedBy names the service that acted (service events and the
	// rotation service's calls: secretsmanager.amazonaws.com).
	InvokedBy string `json:"invokedBy,omitempty"`
}

// Resource is an entry of resources: the secret a request involved.
type Resource struct {
	ARN       string `json:"ARN"`
	AccountID string `json:"accountId,omitempty"`
	Type      string `json:"type"`
}

// hashLine is a line's chain hash: hex SHA-256 of its bytes without the
// newline.
func hashLine(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// ParseRecord decodes one line (without its newline) and checks the chain
// fields' shape: a sequence from 1 and a 64-digit lowercase hex
// previousHash. It is the reader Verify and Tail use.
func ParseRecord(line []byte) (Record, error) {
	var rec Record
	if len(line) == 0 {
		return rec, errors.New("empty line")
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return Record{}, fmt.Errorf("not a JSON record: %v", err)
	}
	if rec.Sequence == 0 {
		return Record{}, errors.New("no sequence (or sequence 0)")
	}
	if !isHash(rec.PreviousHash) {
		return Record{}, fmt.Errorf("previousHash %q is not 64 lowercase hex digits", truncate(rec.PreviousHash, 80))
	}
	return rec, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
