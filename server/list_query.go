package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"github.com/hashicorp/go-memdb"
	"regexp"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// The selection ListSecrets and BatchGetSecretValue-by-Filters share
// (shared/spec §4.7, §4.3): filter validation in AWS's order and wording,
// the fsm query, and the pagination token.

// filterKeys is the Filter.Key enum as AWS lists it in its
// ValidationException message.
var filterKeys = []string{fsm.FilterAll, fsm.FilterName, fsm.FilterTagKey, fsm.FilterDescription,
	fsm.FilterTagValue, fsm.FilterPrimaryRegion, fsm.FilterOwningService}

var (
	sortByValues    = []string{fsm.SortCreatedDate, fsm.SortLastAccessedDate, fsm.SortLastChangedDate, fsm.SortName}
	sortOrderValues = []string{"asc", "desc"}
)

// filterValuePattern is the model's pattern for a Filter value.
const filterValuePattern = `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$`

var validFilterValue = regexp.MustCompile(filterValuePattern)

// listScanLimit bounds the secrets one page examines, so a filter that
// matches few secrets costs a bounded amount per request; such a page may
// come back short or empty, with a NextToken that continues the walk.
const listScanLimit = 10000

type filterJSON struct {
	Key    *string  `json:"Key"`
	Values []string `json:"Values"`
}

func enumConstraint(values []string) string {
	return "Member must satisfy enum value set: [" + strings.Join(values, ", ") + "]"
}

func validateEnum(v *validator, value *string, path string, values []string) {
	if value == nil {
		return
	}
	for _, ok := range values {
		if *value == ok {
			return
		}
	}
	v.add(value, path, enumConstraint(values))
}

// validateFilters adds the model-constraint violations of a Filters list
// to v (ValidationException).
func validateFilters(v *validator, filters []filterJSON) {
	if len(filters) > 10 {
		n := itoa(len(filters)) + " items"
		v.add(&n, "filters", "Member must have length less than or equal to 10")
	}
	for i, f := range filters {
		path := "filters." + itoa(i+1) + ".member"
		validateEnum(v, f.Key, path+".key", filterKeys)
		if f.Values != nil && (len(f.Values) < 1 || len(f.Values) > 10) {
			n := itoa(len(f.Values)) + " items"
			v.add(&n, path+".values", "Member must have length less than or equal to 10 and greater than or equal to 1")
		}
		for j := range f.Values {
			vp := path + ".values." + itoa(j+1) + ".member"
			v.length(&f.Values[j], vp, 0, 512)
			if !validFilterValue.MatchString(f.Values[j]) {
				v.add(&f.Values[j], vp, "Member must satisfy regular expression pattern: "+filterValuePattern)
			}
		}
	}
}

// filterRules applies the stateless rules after the model constraints:
// a filter needs a key and values (InvalidParameterException).
func filterRules(filters []filterJSON) ([]fsm.ListFilter, error) {
	out := make([]fsm.ListFilter, 0, len(filters))
	for _, f := range filters {
		if f.Key == nil {
			return nil, apierr.New(apierr.InvalidParameter, apierr.MsgInvalidFilterKey)
		}
		if f.Values == nil {
			return nil, apierr.New(apierr.InvalidParameter, apierr.MsgFilterValues+*f.Key)
		}
		out = append(out, fsm.ListFilter{Key: *f.Key, Values: f.Values})
	}
	return out, nil
}

// Pagination tokens are opaque and tamper-evident: the body is a binding
// — the operation, IncludePlannedDeletion, the sort and a hash of the
// filters — and the cursor (the position of the last secret a page
// examined, see fsm/query_list.go), with an HMAC under the region's key.
// A token only continues the listing it was issued for: any other
// operation, filters or sort is InvalidNextTokenException. A token is at
// most ~1.7 KB: the cursor holds a name (≤512) and an ARN at most.

// listBinding identifies a listing for its tokens.
func listBinding(op string, q *fsm.ListQuery) string {
	h := sha256.New()
	for _, f := range q.Filters {
		h.Write([]byte(f.Key))
		for _, v := range f.Values {
			h.Write([]byte{0})
			h.Write([]byte(v))
		}
		h.Write([]byte{1})
	}
	flags := "a"
	if q.IncludeDeleted {
		flags = "d"
	}
	order := "asc"
	if q.Desc {
		order = "desc"
	}
	sortBy := q.SortBy
	if sortBy == "" {
		sortBy = fsm.SortCreatedDate
	}
	return "2|" + op + "|" + flags + "|" + sortBy + "|" + order + "|" + hex.EncodeToString(h.Sum(nil)[:12])
}

// listPage reads one page of the listing q of operation op (ListSecrets or
// BatchGetSecretValue by filters), continuing after nextToken if given,
// on a read as the request asks, and returns it with the token of the next
// page ("" on the last), and the read transaction it came from.
func listPage(ctx context.Context, r Region, req *request, op string, q fsm.ListQuery, nextToken *string) (fsm.ListPage, string, *memdb.Txn, error) {
	kr, err := r.Keyring()
	if err != nil {
		return fsm.ListPage{}, "", nil, err
	}
	binding := listBinding(op, &q)
	if nextToken != nil {
		if q.After, err = openToken(kr, *nextToken, binding); err != nil {
			return fsm.ListPage{}, "", nil, err
		}
	}
	txn, err := read(ctx, r, req)
	if err != nil {
		return fsm.ListPage{}, "", nil, err
	}
	page, err := fsm.ListSecretsPage(txn, q)
	if err != nil {
		return fsm.ListPage{}, "", nil, apierr.Newf(apierr.InternalServiceError, "listing failed: %v", err)
	}
	next := ""
	if page.Next != "" {
		next = sealToken(kr, binding, page.Next)
	}
	return page, next, txn, nil
}

func sealToken(kr *crypto.Keyring, binding, cursor string) string {
	body := binding + "\x00" + cursor
	mac := kr.Digest("list-token", []byte(body))[:16]
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

func openToken(kr *crypto.Keyring, token, binding string) (string, error) {
	bad := apierr.New(apierr.InvalidNextToken, "The NextToken is not valid: it was not issued by this region for this request. Start again without NextToken.")
	b64body, b64mac, ok := strings.Cut(token, ".")
	if !ok {
		return "", bad
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64body)
	mac, err2 := base64.RawURLEncoding.DecodeString(b64mac)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, kr.Digest("list-token", body)[:16]) {
		return "", bad
	}
	got, cursor, ok := strings.Cut(string(body), "\x00")
	if !ok || got != binding || cursor == "" {
		return "", bad
	}
	return cursor, nil
}
