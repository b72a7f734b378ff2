package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/hashicorp/go-memdb"
	"github.com/labstack/echo/v4"
)

// The audit log (docs/audit.md). Every AWS API request (POST /), allowed,
// refused or failed, and every signed operator call under /v1/ writes one
// record, before its answer leaves: the `audited` middleware puts an
// auditEvent on the request's context, which authentication, the API
// handler and writeError fill in, and replaces the response writer by one
// that writes the record when the answer's status is written (the first
// WriteHeader). If the record cannot be written the answer is withheld
// (it may carry a secret value) and the client gets an InternalFailure.
// A request that arrives while the log is broken is refused before it
// runs. The rotation service's in-process calls (Caller) and its service
// events are recorded the same way, without HTTP.

// errAuditRefused answers a request refused because the log is broken.
var errAuditRefused = apierr.New(apierr.InternalFailure,
	"The audit log cannot be written; the request was not served. Retry once the node's audit directory is writable again.")

// errAuditWithheld answers a request that ran but whose record could not
// be written. A write may have applied.
var errAuditWithheld = apierr.New(apierr.InternalFailure,
	"The audit log cannot be written; the answer was withheld. A write may have been applied: retrying with the same ClientRequestToken is safe.")

const auditKey = "coffer.audit"

// auditEvent is what a request's record is made of, gathered while the
// request runs.
type auditEvent struct {
	start    time.Time
	source   string
	name     string
	readOnly bool
	region   Region
	scope    string // the region in the credential scope, if not hosted
	keyID    string
	identity string
	// principal is the caller as authorization described it (its ARN
	// with the user's path, its unique id), once authorized.
	principal acl.Principal
	params    json.RawMessage
	response  any
	req       *request
	errorCode string
	errorMsg  string
}

func auditOf(c echo.Context) *auditEvent {
	ev, _ := c.Get(auditKey).(*auditEvent)
	return ev
}

// audited records the requests of a route (source: the record's
// eventSource). name, if given, is the eventName; otherwise the handler
// sets it (the API's operation).
func (s *Server) audited(source string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := s.cfg.Audit.Ready(); err != nil {
				s.metrics.auditFailures.Inc()
				s.logger.Error("the audit log cannot be written: request refused", "path", c.Request().URL.Path, "error", err)
				return writeError(c, errAuditRefused)
			}
			h := c.Request().Header
			ev := &auditEvent{start: s.cfg.Clock(), source: source, keyID: credentialKeyID(h.Get("Authorization")),
				scope: clip(strings.TrimSpace(regionOfScope(h.Get("Authorization"))), 64)}
			if source == audit.SourceAdmin {
				ev.name = c.Request().Method + " " + c.Path()
				ev.readOnly = c.Request().Method == http.MethodGet
				if q := c.QueryParams(); len(q) > 0 {
					ev.params, _ = json.Marshal(q)
				}
			}
			c.Set(auditKey, ev)
			w := &auditWriter{ResponseWriter: c.Response().Writer, s: s, c: c, ev: ev}
			c.Response().Writer = w
			err := next(c)
			if err == nil && !w.decided {
				w.WriteHeader(http.StatusOK)
			}
			return err
		}
	}
}

// auditWriter writes the request's record when the answer's status is
// written, and withholds the answer if it cannot.
type auditWriter struct {
	http.ResponseWriter
	s        *Server
	c        echo.Context
	ev       *auditEvent
	decided  bool
	withheld bool
}

func (w *auditWriter) WriteHeader(status int) {
	if w.decided {
		if !w.withheld {
			w.ResponseWriter.WriteHeader(status)
		}
		return
	}
	w.decided = true
	h := w.Header()
	rec := w.s.auditRecord(w.ev, status, h.Get("x-amzn-RequestId"), w.c.RealIP(), w.c.Request().UserAgent())
	err := w.s.writeAudit(rec)
	if err == nil && w.ev.req != nil {
		err = w.s.writeItemRecords(rec, w.ev.req.items)
		for _, e := range w.ev.req.events {
			if err == nil && rec.ErrorCode == "" {
				err = w.s.writeAudit(w.s.serviceRecord(w.ev.region, e, rec.RequestID))
			}
		}
	}
	if err != nil {
		w.withheld = true
		for _, k := range []string{"Content-Length", "Content-Disposition", HeaderIndex, HeaderLastContact} {
			h.Del(k)
		}
		h.Set("Content-Type", contentTypeJSON11)
		h.Set("X-Amzn-ErrorType", apierr.InternalFailure)
		h.Set(HeaderOutcome, string(cluster.OutcomeUnknown))
		body, _ := json.Marshal(map[string]string{"__type": apierr.InternalFailure, "Message": errAuditWithheld.Message})
		w.ResponseWriter.WriteHeader(http.StatusInternalServerError)
		w.ResponseWriter.Write(body)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *auditWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.withheld {
		return len(p), nil // the answer is not sent
	}
	return w.ResponseWriter.Write(p)
}

func (w *auditWriter) Flush() {
	if !w.withheld {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeItemRecords writes, after a BatchGetSecretValue's record, one
// GetSecretValue record per secret it was asked for (spec §8.1), with the
// batch's request id and that secret's outcome.
func (s *Server) writeItemRecords(batch audit.Record, items []batchItem) error {
	for _, it := range items {
		rec := batch
		rec.EventName, rec.ReadOnly, rec.EventID, rec.ResponseElements = "GetSecretValue", true, newRequestID(), nil
		rec.RequestParameters, _ = json.Marshal(map[string]string{"secretId": it.id})
		rec.Resources, rec.ErrorCode, rec.ErrorMessage = nil, it.code, it.msg
		if it.arn != "" {
			rec.Resources = []audit.Resource{{ARN: it.arn, AccountID: batch.RecipientAccountID, Type: audit.ResourceSecret}}
		}
		if err := s.writeAudit(rec); err != nil {
			return err
		}
	}
	return nil
}

// writeAudit appends a record and counts it, or counts the failure.
func (s *Server) writeAudit(rec audit.Record) error {
	if err := s.cfg.Audit.Write(rec); err != nil {
		s.metrics.auditFailures.Inc()
		s.logger.Error("the audit log cannot be written", "event", rec.EventName, "request_id", rec.RequestID, "error", err)
		return err
	}
	s.metrics.auditRecords.Inc()
	return nil
}

// auditRecord builds the record of a request answered with status.
func (s *Server) auditRecord(ev *auditEvent, status int, requestID, ip, userAgent string) audit.Record {
	r := ev.region
	regionName := ev.scope
	if r != nil {
		regionName = r.Name()
	} else if s.regions[regionName] != nil {
		r = s.regions[regionName]
	} else {
		r = s.regions[s.names[0]]
		if regionName == "" {
			regionName = r.Name()
		}
	}
	account := r.AccountID()
	rec := audit.Record{
		EventVersion: audit.EventVersion, EventTime: ev.start.UTC().Format(time.RFC3339),
		EventSource: ev.source, EventName: ev.name, AWSRegion: regionName,
		UserIdentity:    auditIdentity(r, ev.identity, ev.keyID, ev.principal),
		SourceIPAddress: ip, UserAgent: clip(userAgent, 1024),
		RequestParameters: ev.params, RequestID: requestID, EventID: newRequestID(),
		ReadOnly: ev.readOnly, EventType: audit.TypeAPICall, ManagementEvent: true,
		RecipientAccountID: account, EventCategory: "Management", Node: s.nodeID,
	}
	if status >= 400 || ev.errorCode != "" {
		rec.ErrorCode, rec.ErrorMessage = ev.errorCode, ev.errorMsg
	}
	var arns []string
	if ev.req != nil {
		arns = ev.req.resolvedARNs()
	}
	if rec.ErrorCode == "" && ev.source == audit.SourceSecretsManager && !ev.readOnly {
		rec.ResponseElements = responseElements(ev.response)
		if len(arns) == 0 {
			// A secret no request resolved: the one CreateSecret made.
			var out struct{ ARN string }
			if json.Unmarshal(rec.ResponseElements, &out) == nil && out.ARN != "" {
				arns = []string{out.ARN}
			}
		}
	}
	for _, a := range arns {
		rec.Resources = append(rec.Resources, audit.Resource{ARN: a, AccountID: account, Type: audit.ResourceSecret})
	}
	return rec
}

// auditIdentity is the record's userIdentity for the caller identity
// authentication found (region.RootIdentity, ServicePrincipal, or a user's
// name once IAM users exist) and the access key it signed with. The one
// place the identity is described: IAM users' ARNs go here.
func auditIdentity(r Region, identity, keyID string, p acl.Principal) audit.Identity {
	account := r.AccountID()
	id := audit.Identity{AccountID: account, AccessKeyID: keyID}
	switch identity {
	case "":
		// Not authenticated: the key id it claimed, if any.
		id.Type = "Unknown"
	case region.RootIdentity:
		id.Type, id.PrincipalID, id.ARN = "Root", account, "arn:aws:iam::"+account+":root"
	case ServicePrincipal:
		id = audit.Identity{Type: "AWSService", InvokedBy: ServicePrincipal, AccountID: account}
	default:
		id.Type, id.UserName = "IAMUser", identity
		id.ARN = "arn:aws:iam::" + account + ":user/" + identity
		if p.ARN != "" {
			// The ARN with the user's path, and its unique id.
			id.ARN, id.PrincipalID = p.ARN, p.UserID
		}
	}
	return id
}

// credentialKeyID is the access key id in an Authorization header's
// credential scope ("" if there is none), clipped: it is the client's
// claim until the signature is checked.
func credentialKeyID(authorization string) string {
	_, cred, ok := strings.Cut(authorization, "Credential=")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(cred, "/")
	return clip(id, 128)
}

// regionOfScope is the region of an Authorization header's credential
// scope.
func regionOfScope(authorization string) string {
	_, cred, ok := strings.Cut(authorization, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// auditAuthenticated records who a request was authenticated as.
func auditAuthenticated(c echo.Context, r Region, keyID, identity string) {
	if ev := auditOf(c); ev != nil {
		ev.region, ev.keyID, ev.identity = r, keyID, identity
	}
}

// auditError records the error a request is answered with (writeError).
func auditError(c echo.Context, code, msg string) {
	if ev := auditOf(c); ev != nil {
		ev.errorCode, ev.errorMsg = code, msg
	}
}

// readOnlyOps are the operations whose records carry no responseElements
// (their answers hold values, passwords or nothing a write changed) and
// readOnly true.
var readOnlyOps = map[string]bool{
	"GetSecretValue": true, "BatchGetSecretValue": true, "GetRandomPassword": true,
	"DescribeSecret": true, "ListSecrets": true, "ListSecretVersionIds": true,
	"GetResourcePolicy": true, "ValidateResourcePolicy": true,
}

// requestMembers are the request members a record keeps, in every
// operation (AWS's names). Any other member is dropped: SecretString,
// SecretBinary and RotationToken above all, and whatever a client adds
// that the API does not know, which could be anything.
var requestMembers = map[string]bool{
	"SecretId": true, "Name": true, "ClientRequestToken": true, "Description": true, "KmsKeyId": true,
	"Tags": true, "TagKeys": true, "Type": true, "AddReplicaRegions": true, "RemoveReplicaRegions": true,
	"ForceOverwriteReplicaSecret": true, "VersionId": true, "VersionStage": true, "VersionStages": true,
	"RecoveryWindowInDays": true, "ForceDeleteWithoutRecovery": true, "MaxResults": true, "NextToken": true,
	"IncludePlannedDeletion": true, "IncludeDeprecated": true, "Filters": true, "SortOrder": true, "SortBy": true,
	"SecretIdList": true, "RotationLambdaARN": true, "RotationRules": true, "RotateImmediately": true,
	"ResourcePolicy": true, "BlockPublicPolicy": true, "MoveToVersionId": true, "RemoveFromVersionId": true,
	"PasswordLength": true, "ExcludeCharacters": true, "ExcludeNumbers": true, "ExcludePunctuation": true,
	"ExcludeUppercase": true, "ExcludeLowercase": true, "IncludeSpace": true, "RequireEachIncludedType": true,
}

// responseMembers are the members of a write's answer a record keeps.
var responseMembers = map[string]bool{
	"ARN": true, "Name": true, "VersionId": true, "VersionStages": true, "DeletionDate": true,
	"ReplicationStatus": true, "SecretId": true,
}

// requestParameters is a request body's kept members, lowerCamelCase; nil
// (null) if the body is not a JSON object.
func requestParameters(body []byte) json.RawMessage {
	return keep(bytes.TrimSpace(body), requestMembers)
}

// responseElements is a write's answer's kept members, lowerCamelCase.
func responseElements(out any) json.RawMessage {
	if out == nil {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return keep(b, responseMembers)
}

func keep(b []byte, members map[string]bool) json.RawMessage {
	var m map[string]json.RawMessage
	if len(b) == 0 || json.Unmarshal(b, &m) != nil || m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !members[k] {
			continue
		}
		var val any
		if json.Unmarshal(v, &val) != nil {
			continue
		}
		out[lowerCamel(k)] = camelKeys(val)
	}
	buf, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return buf
}

// camelKeys renames the keys of nested objects (Tags' Key and Value,
// RotationRules' members) as CloudTrail does.
func camelKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[lowerCamel(k)] = camelKeys(x)
		}
		return out
	case []any:
		for i := range t {
			t[i] = camelKeys(t[i])
		}
	}
	return v
}

// lowerCamel is CloudTrail's member name: the first letter lowered
// (SecretId → secretId, RotationLambdaARN → rotationLambdaARN), an
// all-capitals name lowered whole (ARN → arn).
func lowerCamel(k string) string {
	if k == "" {
		return k
	}
	if strings.ToUpper(k) == k {
		return strings.ToLower(k)
	}
	r := []rune(k)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// resolvingRegion is the Region an API handler is given: it notes on the
// request every secret the handler resolves (by Resolve, or through
// WriteSecret), for the record's resources. The one place handlers report
// the secret they act on.
type resolvingRegion struct {
	Region
	req *request
}

func (r resolvingRegion) Resolve(txn *memdb.Txn, id string) *fsm.Secret {
	s := r.Region.Resolve(txn, id)
	if s != nil {
		r.req.resolved(s.ARN)
	}
	return s
}

func (r resolvingRegion) WriteSecret(ctx context.Context, id string, build func(*fsm.Secret) (fsm.CommandType, any, error)) (*fsm.Result, uint64, error) {
	return r.Region.WriteSecret(ctx, id, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		r.req.resolved(s.ARN)
		return build(s)
	})
}

// arnSet is the secrets a request resolved, in order, without repeats.
type arnSet struct {
	mu   sync.Mutex
	arns []string
}

func (req *request) resolved(arn string) {
	req.arns.mu.Lock()
	defer req.arns.mu.Unlock()
	if !slices.Contains(req.arns.arns, arn) {
		req.arns.arns = append(req.arns.arns, arn)
	}
}

func (req *request) resolvedARNs() []string {
	req.arns.mu.Lock()
	defer req.arns.mu.Unlock()
	return slices.Clone(req.arns.arns)
}

// auditCall records an in-process call of the rotation service (Caller):
// the same record as a client's, from the service principal.
func (s *Server) auditCall(r Region, operation string, req *request, out any, err error) error {
	ev := &auditEvent{start: s.cfg.Clock(), source: audit.SourceSecretsManager, name: operation, readOnly: readOnlyOps[operation],
		region: r, identity: ServicePrincipal, params: requestParameters(req.body), response: out, req: req}
	status := http.StatusOK
	if err != nil {
		st, code, msg, _ := wireError(err)
		status, ev.errorCode, ev.errorMsg = st, code, msg
	}
	return s.writeAudit(s.auditRecord(ev, status, newRequestID(), ServicePrincipal, ServicePrincipal))
}

// RotationEvent records a service event of the rotation scheduler
// (rotation.Notifier): RotationStarted, RotationSucceeded, RotationFailed
// (message names the failing step) or RotationAbandoned. The rotation has
// happened whatever the log says, so a failure is logged and counted, not
// returned.
func (c *Caller) RotationEvent(ctx context.Context, name, secretARN, message string) {
	r, ok := c.s.regions[c.region]
	if !ok {
		return
	}
	if name != "RotationFailed" && name != "RotationAbandoned" {
		message = ""
	}
	c.s.writeAudit(c.s.serviceRecord(r, serviceEvent{name: name, arn: secretARN, message: message},
		"Rotation-"+secretARN+"-"+newRequestID()))
}

// serviceEvent is a service event (spec §8.1): the secret it is about, the
// version for version events, and the error message of a failure.
type serviceEvent struct{ name, arn, versionID, message string }

// serviceRecord is the record of a service event: produced by the
// service itself (invokedBy secretsmanager.amazonaws.com), its secret in
// additionalEventData and resources.
func (s *Server) serviceRecord(r Region, e serviceEvent, requestID string) audit.Record {
	account := r.AccountID()
	data := map[string]string{"SecretId": e.arn}
	if e.versionID != "" {
		data["VersionId"] = e.versionID
	}
	extra, _ := json.Marshal(data)
	return audit.Record{
		EventVersion: audit.EventVersion, EventTime: s.cfg.Clock().UTC().Format(time.RFC3339),
		EventSource: audit.SourceSecretsManager, EventName: e.name, AWSRegion: r.Name(),
		UserIdentity:    audit.Identity{AccountID: account, InvokedBy: ServicePrincipal},
		SourceIPAddress: ServicePrincipal, UserAgent: ServicePrincipal,
		AdditionalEventData: extra, RequestID: requestID, EventID: newRequestID(),
		EventType: audit.TypeServiceEvent, ManagementEvent: true, RecipientAccountID: account,
		EventCategory: "Management", Node: s.nodeID, ErrorMessage: e.message,
		Resources: []audit.Resource{{ARN: e.arn, AccountID: account, Type: audit.ResourceSecret}},
	}
}

// versionEvents are the service events of one secret's versions: name
// (StartSecretVersionDelete, CancelSecretVersionDelete,
// EndSecretVersionDelete) once per version.
func versionEvents(name string, s *fsm.Secret) []serviceEvent {
	out := make([]serviceEvent, 0, len(s.Versions))
	for _, v := range s.Versions {
		out = append(out, serviceEvent{name: name, arn: s.ARN, versionID: v.VersionID})
	}
	return out
}

// auditPurge records the purge of an expired secret: one
// EndSecretVersionDelete per version it had. The purge has happened
// whatever the log says: a failure is logged and counted.
func (s *Server) auditPurge(r Region) func(arn string, versionIDs []string) {
	return func(arn string, versionIDs []string) {
		id := newRequestID()
		for _, v := range versionIDs {
			s.writeAudit(s.serviceRecord(r, serviceEvent{name: "EndSecretVersionDelete", arn: arn, versionID: v}, id))
		}
	}
}
