package server

import (
	"cmp"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

func init() {
	register("ListSecretVersionIds", listSecretVersionIDs)
}

// ListSecretVersionIds (shared/spec §4.8).

// defaultKeyName is what AWS lists in KmsKeyIds for the default key.
const defaultKeyName = "DefaultEncryptionKey"

type versionEntry struct {
	VersionID        string   `json:"VersionId"`
	VersionStages    []string `json:"VersionStages,omitempty"`
	CreatedDate      epoch    `json:"CreatedDate,omitempty"`
	LastAccessedDate epoch    `json:"LastAccessedDate,omitempty"`
	KmsKeyIDs        []string `json:"KmsKeyIds"`
}

func listSecretVersionIDs(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID          *string `json:"SecretId"`
		MaxResults        *int64  `json:"MaxResults"`
		NextToken         *string `json:"NextToken"`
		IncludeDeprecated *bool   `json:"IncludeDeprecated"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	v.intRange(in.MaxResults, "maxResults", 1, 100)
	v.length(in.NextToken, "nextToken", 1, 4096)
	if err := v.err(); err != nil {
		return nil, err
	}
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	s, err := readSecret(ctx, r, req, *in.SecretID)
	if err != nil {
		return nil, err
	}
	deprecated := in.IncludeDeprecated != nil && *in.IncludeDeprecated
	var after *versionCursor
	if in.NextToken != nil {
		c, err := openVersionToken(kr, *in.NextToken, s.ARN, deprecated)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	limit := 100
	if in.MaxResults != nil {
		limit = int(*in.MaxResults)
	}
	// Creation order, ties by id: a total order, so a cursor survives
	// versions being added or purged between pages.
	versions := slices.Clone(s.Versions)
	slices.SortFunc(versions, func(a, b *fsm.Version) int {
		return cmp.Or(cmp.Compare(a.CreatedDate, b.CreatedDate), strings.Compare(a.VersionID, b.VersionID))
	})
	out := struct {
		Versions  []versionEntry `json:"Versions"`
		NextToken string         `json:"NextToken,omitempty"`
		ARN       string         `json:"ARN"`
		Name      string         `json:"Name"`
	}{Versions: []versionEntry{}, ARN: s.ARN, Name: s.Name}
	for _, ver := range versions {
		if (len(ver.Stages) == 0 && !deprecated) || (after != nil && !after.before(ver)) {
			continue
		}
		if len(out.Versions) == limit {
			last := out.Versions[len(out.Versions)-1]
			out.NextToken = sealVersionToken(kr, versionCursor{int64(last.CreatedDate), last.VersionID}, s.ARN, deprecated)
			break
		}
		out.Versions = append(out.Versions, versionEntry{VersionID: ver.VersionID, VersionStages: ver.Stages,
			CreatedDate: epoch(ver.CreatedDate), LastAccessedDate: epoch(ver.LastAccessedDate), KmsKeyIDs: []string{versionKeyName(r, s, ver)}})
	}
	return out, nil
}

// versionCursor is the last version of a page.
type versionCursor struct {
	created int64
	id      string
}

// before reports whether the cursor sorts before v.
func (c versionCursor) before(v *fsm.Version) bool {
	return cmp.Or(cmp.Compare(c.created, v.CreatedDate), strings.Compare(c.id, v.VersionID)) < 0
}

// A version-list token is the cursor and the IncludeDeprecated flag, with
// an HMAC under the region's key over them and the secret's ARN: opaque,
// tamper-evident, bounded (the ARN is bound, not carried), and refused for
// another secret or other options.
func sealVersionToken(kr *crypto.Keyring, c versionCursor, arn string, deprecated bool) string {
	body := strconv.FormatInt(c.created, 10) + "\x01" + c.id + "\x01" + strconv.FormatBool(deprecated)
	mac := kr.Digest("version-list-token", []byte(body+"\x00"+arn))[:16]
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

func openVersionToken(kr *crypto.Keyring, token, arn string, deprecated bool) (versionCursor, error) {
	bad := apierr.New(apierr.InvalidNextToken, "The NextToken is not valid: it was not issued for this secret and these options. Start again without NextToken.")
	b64body, b64mac, ok := strings.Cut(token, ".")
	if !ok {
		return versionCursor{}, bad
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64body)
	mac, err2 := base64.RawURLEncoding.DecodeString(b64mac)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, kr.Digest("version-list-token", []byte(string(body)+"\x00"+arn))[:16]) {
		return versionCursor{}, bad
	}
	parts := strings.Split(string(body), "\x01")
	if len(parts) != 3 || parts[2] != strconv.FormatBool(deprecated) {
		return versionCursor{}, bad
	}
	created, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return versionCursor{}, bad
	}
	return versionCursor{created, parts[1]}, nil
}

// versionKeyName names the key that wraps a version's data key: as the
// client named it when that is the secret's key (which also keeps the
// opaque KmsKeyId of a secret written before keys existed), AWS's literal
// for the default key, else the key's ARN.
func versionKeyName(r Region, s *fsm.Secret, ver *fsm.Version) string {
	key := r.KeyOf(ver.Value.KEKID)
	switch {
	case s.KmsKeyID != "" && (key == s.KeyID || key == fsm.DefaultKeyID && s.KeyID == ""):
		return s.KmsKeyID
	case key == "" || key == fsm.DefaultKeyID:
		return defaultKeyName
	}
	return fsm.KeyARN(r.Name(), r.AccountID(), key)
}
