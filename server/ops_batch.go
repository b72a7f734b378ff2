package server

import (
	"context"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
)

func init() {
	register("BatchGetSecretValue", batchGetSecretValue)
}

// BatchGetSecretValue (shared/spec §4.3) by SecretIdList: one read index
// for the whole batch, then GetSecretValue(AWSCURRENT) for each id in
// order; a failure is that id's entry in Errors, never the call's.
// By Filters: the secrets ListSecrets would select with those filters
// (active only, creation order), a page of MaxResults (default 20) at a
// time, each read as GetSecretValue(AWSCURRENT); a page may be empty and
// still carry a NextToken (a selective filter scanned its budget).

// batchItem is one secret of a batch as the audit records it: the id
// asked for, the secret's ARN if found, and the error code and message if
// it was not served.
type batchItem struct{ id, arn, code, msg string }

// served notes an item of the batch for the audit log.
func (req *request) served(id string, s *fsm.Secret, e *batchError) {
	it := batchItem{id: id}
	if s != nil {
		it.arn = s.ARN
	}
	if e != nil {
		it.code, it.msg = e.ErrorCode, e.Message
	}
	req.items = append(req.items, it)
}

type batchError struct {
	SecretID  string `json:"SecretId"`
	ErrorCode string `json:"ErrorCode"`
	Message   string `json:"Message"`
}

func batchGetSecretValue(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretIDList []string     `json:"SecretIdList"`
		Filters      []filterJSON `json:"Filters"`
		MaxResults   *int64       `json:"MaxResults"`
		NextToken    *string      `json:"NextToken"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	if in.SecretIDList != nil && (len(in.SecretIDList) < 1 || len(in.SecretIDList) > 20) {
		n := itoa(len(in.SecretIDList)) + " items"
		v.add(&n, "secretIdList", "Member must have length less than or equal to 20 and greater than or equal to 1")
	}
	for i := range in.SecretIDList {
		v.length(&in.SecretIDList[i], "secretIdList."+itoa(i+1)+".member", 1, 2048)
	}
	validateFilters(&v, in.Filters)
	v.intRange(in.MaxResults, "maxResults", 1, 20)
	v.length(in.NextToken, "nextToken", 1, 4096)
	if err := v.err(); err != nil {
		return nil, err
	}
	if (in.SecretIDList != nil) == (in.Filters != nil) {
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgBatchListOrFilters)
	}
	if in.MaxResults != nil && in.Filters == nil {
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgBatchMaxResults)
	}
	if in.Filters != nil {
		return batchByFilters(ctx, r, req, in.Filters, in.MaxResults, in.NextToken)
	}
	if in.NextToken != nil {
		// A list of ids is answered in one page: no token was ever issued.
		return nil, apierr.New(apierr.InvalidNextToken, "The NextToken is not valid: BatchGetSecretValue with SecretIdList answers in one page. Send the request without NextToken.")
	}
	if err := req.authorize(r, nil, ""); err != nil {
		return nil, err
	}
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	txn, err := read(ctx, r, req)
	if err != nil {
		return nil, err
	}
	out := struct {
		SecretValues []*secretValueOut `json:"SecretValues"`
		Errors       []batchError      `json:"Errors,omitempty"`
	}{SecretValues: []*secretValueOut{}}
	var reads []region.ValueRead
	for _, id := range in.SecretIDList {
		s := r.Resolve(txn, id)
		if err := req.authorizeAction(r, "GetSecretValue", s, id); err != nil {
			e, _ := apierr.As(err)
			out.Errors = append(out.Errors, batchError{id, e.Code, e.Message})
			req.served(id, s, &out.Errors[len(out.Errors)-1])
			continue
		}
		if s == nil {
			out.Errors = append(out.Errors, batchError{id, apierr.ResourceNotFound, apierr.MsgSecretNotFound})
			req.served(id, s, &out.Errors[len(out.Errors)-1])
			continue
		}
		val, err := readValue(r, kr, s, nil, nil, &reads)
		if err != nil {
			e, ok := apierr.As(err)
			if !ok {
				e = apierr.New(apierr.InternalServiceError, "the value could not be read")
			}
			out.Errors = append(out.Errors, batchError{id, e.Code, e.Message})
			req.served(id, s, &out.Errors[len(out.Errors)-1])
			continue
		}
		out.SecretValues = append(out.SecretValues, val)
		req.served(id, s, nil)
	}
	r.RecordAccess(ctx, req.stale, reads)
	return out, nil
}

func batchByFilters(ctx context.Context, r Region, req *request, filters []filterJSON, maxResults *int64, nextToken *string) (any, error) {
	fs, err := filterRules(filters)
	if err != nil {
		return nil, err
	}
	// By filters the call lists too (spec §4.23).
	if err := req.authorize(r, nil, ""); err != nil {
		return nil, err
	}
	if err := req.authorizeAction(r, "ListSecrets", nil, ""); err != nil {
		return nil, err
	}
	q := fsm.ListQuery{Filters: fs, Limit: 20, ScanLimit: listScanLimit}
	if maxResults != nil {
		q.Limit = int(*maxResults)
	}
	page, next, _, err := listPage(ctx, r, req, "BatchGetSecretValue", q, nextToken)
	if err != nil {
		return nil, err
	}
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	out := struct {
		SecretValues []*secretValueOut `json:"SecretValues"`
		Errors       []batchError      `json:"Errors,omitempty"`
		NextToken    string            `json:"NextToken,omitempty"`
	}{SecretValues: []*secretValueOut{}}
	var reads []region.ValueRead
	for _, s := range page.Secrets {
		if req.hidden(r, "ListSecrets", s) {
			continue
		}
		if err := req.authorizeAction(r, "GetSecretValue", s, s.ARN); err != nil {
			e, _ := apierr.As(err)
			out.Errors = append(out.Errors, batchError{s.ARN, e.Code, e.Message})
			req.served(s.ARN, s, &out.Errors[len(out.Errors)-1])
			continue
		}
		val, err := readValue(r, kr, s, nil, nil, &reads)
		if err != nil {
			e, ok := apierr.As(err)
			if !ok {
				e = apierr.New(apierr.InternalServiceError, "the value could not be read")
			}
			out.Errors = append(out.Errors, batchError{s.ARN, e.Code, e.Message})
			req.served(s.ARN, s, &out.Errors[len(out.Errors)-1])
			continue
		}
		out.SecretValues = append(out.SecretValues, val)
		req.served(s.ARN, s, nil)
	}
	r.RecordAccess(ctx, req.stale, reads)
	out.NextToken = next
	return out, nil
}
