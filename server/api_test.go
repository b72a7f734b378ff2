package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// answer is what the index recorder saw of one SDK call.
type answer struct {
	node   int
	op     string
	status int
	index  string // X-Coffer-Index as sent
}

// recorder keeps the HTTP status and X-Coffer-Index of every answer.
type recorder struct {
	mu   sync.Mutex
	seen []answer
}

func (r *recorder) last() answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

func (r *recorder) all() []answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// apiNodes gives SDK clients for a cluster's nodes, round-robin, with a
// recorder on every call.
type apiNodes struct {
	c       *servertest.Cluster
	clients []*secretsmanager.Client
	next    int
	rec     *recorder
}

func newAPINodes(c *servertest.Cluster) *apiNodes {
	a := &apiNodes{c: c, rec: &recorder{}}
	for i := range c.Nodes {
		node := i
		a.clients = append(a.clients, secretsmanager.New(c.Client(i).Options(), func(o *secretsmanager.Options) {
			o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
				return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("coffer-index-recorder",
					func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
						out, md, err := next.HandleDeserialize(ctx, in)
						if resp, ok := out.RawResponse.(*smithyhttp.Response); ok {
							a.rec.mu.Lock()
							a.rec.seen = append(a.rec.seen, answer{node: node, op: middleware.GetOperationName(ctx),
								status: resp.StatusCode, index: resp.Header.Get(server.HeaderIndex)})
							a.rec.mu.Unlock()
						}
						return out, md, err
					}), middleware.After)
			})
		}))
	}
	return a
}

// any returns the client of the next node in turn.
func (a *apiNodes) any() *secretsmanager.Client {
	cl := a.clients[a.next%len(a.clients)]
	a.next++
	return cl
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

// wantAPIError checks err's code and, when msg is not "", its exact message.
func wantAPIError(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, code)
	}
	if apiCode(err) != code || (msg != "" && apiMessage(err) != msg) {
		t.Fatalf("%s: got %s %q, want %s %q", what, apiCode(err), apiMessage(err), code, msg)
	}
}

func arnPattern(name string) *regexp.Regexp {
	return regexp.MustCompile(`^arn:aws:secretsmanager:us-east-1:000000000000:secret:` + regexp.QuoteMeta(name) + `-[A-Za-z0-9]{6}$`)
}

// versionToken returns a 36-character ClientRequestToken that reads as
// the label used in the scenario.
func versionToken(secret, v string) string {
	s := fmt.Sprintf("%x", secret+"/"+v)
	if len(s) > 12 {
		s = s[len(s)-12:]
	}
	return "00000000-0000-4000-8000-" + strings.Repeat("0", 12-len(s)) + s
}

func TestAPI_SecretLifecycle(t *testing.T) {
	c := servertest.New(t, 3)
	a := newAPINodes(c)
	ctx := ctxT(t)

	create := func(t *testing.T, in *secretsmanager.CreateSecretInput) *secretsmanager.CreateSecretOutput {
		t.Helper()
		out, err := a.any().CreateSecret(ctx, in)
		if err != nil {
			t.Fatalf("create %s: %v", aws.ToString(in.Name), err)
		}
		if !arnPattern(aws.ToString(in.Name)).MatchString(aws.ToString(out.ARN)) {
			t.Fatalf("ARN %q does not match %s", aws.ToString(out.ARN), arnPattern(aws.ToString(in.Name)))
		}
		return out
	}
	get := func(t *testing.T, in *secretsmanager.GetSecretValueInput) *secretsmanager.GetSecretValueOutput {
		t.Helper()
		out, err := a.any().GetSecretValue(ctx, in)
		if err != nil {
			t.Fatalf("get %s (version %s, stage %s): %v", aws.ToString(in.SecretId), aws.ToString(in.VersionId), aws.ToString(in.VersionStage), err)
		}
		return out
	}
	put := func(t *testing.T, in *secretsmanager.PutSecretValueInput) *secretsmanager.PutSecretValueOutput {
		t.Helper()
		out, err := a.any().PutSecretValue(ctx, in)
		if err != nil {
			t.Fatalf("put %s %s: %v", aws.ToString(in.SecretId), aws.ToString(in.ClientRequestToken), err)
		}
		return out
	}
	describe := func(t *testing.T, id string) *secretsmanager.DescribeSecretOutput {
		t.Helper()
		out, err := a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("describe %s: %v", id, err)
		}
		return out
	}
	// stages checks DescribeSecret's VersionIdsToStages, labels in order.
	stages := func(t *testing.T, id string, want map[string][]string) {
		t.Helper()
		got := describe(t, id).VersionIdsToStages
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("VersionIdsToStages of %s = %v, want %v", id, got, want)
		}
	}
	notFound := apierr.MsgSecretNotFound

	t.Run("create without a value, then the first put", func(t *testing.T) {
		out := create(t, &secretsmanager.CreateSecretInput{Name: aws.String("novalue")})
		if out.VersionId != nil {
			t.Fatalf("CreateSecret without a value returned VersionId %s", *out.VersionId)
		}
		_, err := a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("novalue")})
		wantAPIError(t, "get before any value", err, apierr.ResourceNotFound,
			"Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")
		if d := describe(t, "novalue"); d.VersionIdsToStages != nil {
			t.Fatalf("VersionIdsToStages without a value: %v", d.VersionIdsToStages)
		}
		v1 := versionToken("novalue", "v1")
		p := put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String("novalue"), ClientRequestToken: aws.String(v1), SecretString: aws.String("first")})
		if aws.ToString(p.VersionId) != v1 || !slices.Equal(p.VersionStages, []string{"AWSCURRENT"}) {
			t.Fatalf("first put answered %s %v", aws.ToString(p.VersionId), p.VersionStages)
		}
		g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("novalue")})
		if aws.ToString(g.SecretString) != "first" || aws.ToString(g.VersionId) != v1 || !slices.Equal(g.VersionStages, []string{"AWSCURRENT"}) {
			t.Fatalf("get after first put: %q %s %v", aws.ToString(g.SecretString), aws.ToString(g.VersionId), g.VersionStages)
		}
		stages(t, "novalue", map[string][]string{v1: {"AWSCURRENT"}})

		// The first version gets AWSCURRENT even when the put names other labels.
		create(t, &secretsmanager.CreateSecretInput{Name: aws.String("novalue-custom")})
		w1 := versionToken("novalue-custom", "v1")
		p = put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String("novalue-custom"), ClientRequestToken: aws.String(w1),
			SecretString: aws.String("first"), VersionStages: []string{"custom"}})
		if !slices.Equal(p.VersionStages, []string{"custom", "AWSCURRENT"}) {
			t.Fatalf("first put with [custom] answered stages %v", p.VersionStages)
		}
		if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("novalue-custom")}); aws.ToString(g.VersionId) != w1 {
			t.Fatalf("AWSCURRENT is %s, want %s", aws.ToString(g.VersionId), w1)
		}
	})

	t.Run("ARN format and SecretId resolution", func(t *testing.T) {
		const name = "app/db-creds"
		out := create(t, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("resolved")})
		arn := aws.ToString(out.ARN)
		partial := strings.TrimSuffix(arn, arn[len(arn)-7:])
		if partial+arn[len(arn)-7:] != arn || !strings.HasSuffix(partial, ":secret:"+name) {
			t.Fatalf("partial ARN %q of %q", partial, arn)
		}
		for _, id := range []string{name, arn, partial} {
			g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
			if aws.ToString(g.SecretString) != "resolved" || aws.ToString(g.ARN) != arn || aws.ToString(g.Name) != name {
				t.Fatalf("get by %s: %q %s %s", id, aws.ToString(g.SecretString), aws.ToString(g.ARN), aws.ToString(g.Name))
			}
			d := describe(t, id)
			if aws.ToString(d.ARN) != arn || aws.ToString(d.Name) != name {
				t.Fatalf("describe by %s: %s %s", id, aws.ToString(d.ARN), aws.ToString(d.Name))
			}
		}
		// Ids that name nothing.
		other := create(t, &secretsmanager.CreateSecretInput{Name: aws.String("ends-abc123"), SecretString: aws.String("x")})
		for _, id := range []string{
			"APP/DB-CREDS",      // names are case-sensitive
			partial + "-zzzzzz", // right name, wrong suffix
			strings.Replace(arn, "us-east-1", "us-west-2", 1),       // another region
			strings.Replace(arn, "000000000000", "111111111111", 1), // another account
			strings.Replace(arn, ":secretsmanager:", ":kms:", 1),
		} {
			_, err := a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
			wantAPIError(t, "get by "+id, err, apierr.ResourceNotFound, notFound)
			_, err = a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
			wantAPIError(t, "describe by "+id, err, apierr.ResourceNotFound, notFound)
		}
		// A name ending in -xxxxxx (my-secret, ends-abc123) is found by
		// name, full ARN and partial ARN: the partial ARN looks like a
		// complete one, and is still tried as a name.
		for _, id := range []string{"ends-abc123", aws.ToString(other.ARN), partialARN(aws.ToString(other.ARN))} {
			if d := describe(t, id); aws.ToString(d.ARN) != aws.ToString(other.ARN) {
				t.Fatalf("describe by %s: %s", id, aws.ToString(d.ARN))
			}
		}
	})

	t.Run("name taken", func(t *testing.T) {
		first := create(t, &secretsmanager.CreateSecretInput{Name: aws.String("taken"), SecretString: aws.String("one")})
		for _, in := range []*secretsmanager.CreateSecretInput{
			{Name: aws.String("taken")},
			{Name: aws.String("taken"), SecretString: aws.String("two")},
			{Name: aws.String("taken"), SecretBinary: []byte{1}},
		} {
			_, err := a.any().CreateSecret(ctx, in)
			wantAPIError(t, "second create", err, apierr.ResourceExists, "The operation failed because the secret taken already exists.")
		}
		g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("taken")})
		if aws.ToString(g.SecretString) != "one" || aws.ToString(g.ARN) != aws.ToString(first.ARN) {
			t.Fatalf("after refused creates: %q %s", aws.ToString(g.SecretString), aws.ToString(g.ARN))
		}
	})

	t.Run("labels scenario A: default stages", func(t *testing.T) {
		const s = "labels-a"
		v1, v2, v3 := versionToken(s, "v1"), versionToken(s, "v2"), versionToken(s, "v3")
		create(t, &secretsmanager.CreateSecretInput{Name: aws.String(s), ClientRequestToken: aws.String(v1), SecretString: aws.String("a1")})
		stages(t, s, map[string][]string{v1: {"AWSCURRENT"}})
		p := put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s), ClientRequestToken: aws.String(v2), SecretString: aws.String("a2")})
		if !slices.Equal(p.VersionStages, []string{"AWSCURRENT"}) {
			t.Fatalf("put v2 answered %v", p.VersionStages)
		}
		stages(t, s, map[string][]string{v1: {"AWSPREVIOUS"}, v2: {"AWSCURRENT"}})
		put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s), ClientRequestToken: aws.String(v3), SecretString: aws.String("a3")})
		stages(t, s, map[string][]string{v2: {"AWSPREVIOUS"}, v3: {"AWSCURRENT"}})

		for _, tc := range []struct {
			id, stage, want, version string
			labels                   []string
		}{
			{"", "", "a3", v3, []string{"AWSCURRENT"}},
			{"", "AWSCURRENT", "a3", v3, []string{"AWSCURRENT"}},
			{"", "AWSPREVIOUS", "a2", v2, []string{"AWSPREVIOUS"}},
			{v3, "AWSCURRENT", "a3", v3, []string{"AWSCURRENT"}},
			{v2, "", "a2", v2, []string{"AWSPREVIOUS"}},
			{v1, "", "a1", v1, nil}, // deprecated, still readable by id
		} {
			in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(s)}
			if tc.id != "" {
				in.VersionId = aws.String(tc.id)
			}
			if tc.stage != "" {
				in.VersionStage = aws.String(tc.stage)
			}
			g := get(t, in)
			if aws.ToString(g.SecretString) != tc.want || aws.ToString(g.VersionId) != tc.version || !slices.Equal(g.VersionStages, tc.labels) {
				t.Fatalf("get id=%q stage=%q: %q %s %v, want %q %s %v", tc.id, tc.stage,
					aws.ToString(g.SecretString), aws.ToString(g.VersionId), g.VersionStages, tc.want, tc.version, tc.labels)
			}
		}
		_, err := a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionId: aws.String(v2), VersionStage: aws.String("AWSCURRENT")})
		wantAPIError(t, "VersionId with another version's stage", err, apierr.InvalidRequest, apierr.MsgVersionStageMismatch)
		_, err = a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionId: aws.String(v1), VersionStage: aws.String("AWSPREVIOUS")})
		wantAPIError(t, "deprecated VersionId with a stage", err, apierr.InvalidRequest, apierr.MsgVersionStageMismatch)
		missing := versionToken(s, "nope")
		_, err = a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionId: aws.String(missing)})
		wantAPIError(t, "unknown VersionId", err, apierr.ResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: "+missing)
		_, err = a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionStage: aws.String("AWSPENDING")})
		wantAPIError(t, "unheld stage", err, apierr.ResourceNotFound, "Secrets Manager can't find the specified secret value for staging label: AWSPENDING")
	})

	t.Run("labels scenario B: custom labels only", func(t *testing.T) {
		for _, variant := range []struct {
			name   string
			third  []string
			expect func(v1, v2, v3 string) map[string][]string
		}{
			{"labels-b", []string{"one", "two", "four"}, func(v1, v2, v3 string) map[string][]string {
				return map[string][]string{v1: {"AWSCURRENT"}, v2: {"three"}, v3: {"one", "two", "four"}}
			}},
			{"labels-b-variant", []string{"one", "two", "three", "four"}, func(v1, v2, v3 string) map[string][]string {
				return map[string][]string{v1: {"AWSCURRENT"}, v3: {"one", "two", "three", "four"}}
			}},
		} {
			s := variant.name
			v1, v2, v3 := versionToken(s, "v1"), versionToken(s, "v2"), versionToken(s, "v3")
			create(t, &secretsmanager.CreateSecretInput{Name: aws.String(s), ClientRequestToken: aws.String(v1), SecretString: aws.String("b1")})
			p := put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s), ClientRequestToken: aws.String(v2),
				SecretString: aws.String("b2"), VersionStages: []string{"one", "two", "three"}})
			// The caller's order, as AWS answers it.
			if !slices.Equal(p.VersionStages, []string{"one", "two", "three"}) {
				t.Fatalf("%s: put v2 answered %v", s, p.VersionStages)
			}
			stages(t, s, map[string][]string{v1: {"AWSCURRENT"}, v2: {"one", "two", "three"}})
			put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s), ClientRequestToken: aws.String(v3),
				SecretString: aws.String("b3"), VersionStages: variant.third})
			stages(t, s, variant.expect(v1, v2, v3))
			if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s)}); aws.ToString(g.SecretString) != "b1" {
				t.Fatalf("%s: AWSCURRENT moved to %q", s, aws.ToString(g.SecretString))
			}
			if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionStage: aws.String("one")}); aws.ToString(g.SecretString) != "b3" {
				t.Fatalf("%s: label one on %q", s, aws.ToString(g.SecretString))
			}
			if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionId: aws.String(v2)}); aws.ToString(g.SecretString) != "b2" {
				t.Fatalf("%s: v2 reads %q", s, aws.ToString(g.SecretString))
			}
		}
		_, err := a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("labels-b"), VersionStage: aws.String("three")})
		if err != nil {
			t.Fatalf("label three: %v", err)
		}
		_, err = a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("labels-b-variant"),
			VersionId: aws.String(versionToken("labels-b-variant", "v2")), VersionStage: aws.String("three")})
		wantAPIError(t, "label moved away from v2", err, apierr.InvalidRequest, apierr.MsgVersionStageMismatch)
	})

	t.Run("SecretBinary round trip", func(t *testing.T) {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		create(t, &secretsmanager.CreateSecretInput{Name: aws.String("binary"), SecretBinary: all})
		g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("binary")})
		if !bytes.Equal(g.SecretBinary, all) || g.SecretString != nil {
			t.Fatalf("read back %x, string %v", g.SecretBinary, g.SecretString)
		}
		zeros := []byte{0, 0, 0, 0xff, 0}
		put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String("binary"), SecretBinary: zeros})
		if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("binary")}); !bytes.Equal(g.SecretBinary, zeros) {
			t.Fatalf("second binary read back %x", g.SecretBinary)
		}
		// A string version after binary ones: each version keeps its kind.
		put(t, &secretsmanager.PutSecretValueInput{SecretId: aws.String("binary"), SecretString: aws.String("now a string")})
		g = get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("binary")})
		if aws.ToString(g.SecretString) != "now a string" || g.SecretBinary != nil {
			t.Fatalf("string version read back %q / %x", aws.ToString(g.SecretString), g.SecretBinary)
		}
		g = get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("binary"), VersionStage: aws.String("AWSPREVIOUS")})
		if !bytes.Equal(g.SecretBinary, zeros) || g.SecretString != nil {
			t.Fatalf("AWSPREVIOUS read back %x / %v", g.SecretBinary, g.SecretString)
		}
	})

	t.Run("deletion lifecycle", func(t *testing.T) {
		within := func(t *testing.T, what string, got *time.Time, from, to time.Time) {
			t.Helper()
			// Dates travel with millisecond precision.
			if got == nil || got.Before(from.Add(-time.Second)) || got.After(to.Add(time.Second)) {
				t.Fatalf("%s = %v, want between %v and %v", what, got, from, to)
			}
		}
		const day = 24 * time.Hour
		listed := func(t *testing.T, include bool) map[string]types.SecretListEntry {
			t.Helper()
			out := map[string]types.SecretListEntry{}
			p := secretsmanager.NewListSecretsPaginator(a.any(), &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(include)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page.SecretList {
					out[aws.ToString(e.Name)] = e
				}
			}
			return out
		}
		for _, n := range []string{"del-default", "del-seven", "del-force"} {
			create(t, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("kept")})
		}

		before := time.Now()
		d, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("del-default")})
		after := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(d.Name) != "del-default" || !arnPattern("del-default").MatchString(aws.ToString(d.ARN)) {
			t.Fatalf("delete answered %s %s", aws.ToString(d.Name), aws.ToString(d.ARN))
		}
		within(t, "DeletionDate with the default window", d.DeletionDate, before.Add(30*day), after.Add(30*day))
		before = time.Now()
		d, err = a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("del-seven"), RecoveryWindowInDays: aws.Int64(7)})
		after = time.Now()
		if err != nil {
			t.Fatal(err)
		}
		within(t, "DeletionDate with a 7-day window", d.DeletionDate, before.Add(7*day), after.Add(7*day))
		sevenARN := aws.ToString(d.ARN)

		for _, n := range []string{"del-default", "del-seven"} {
			_, err = a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(n)})
			wantAPIError(t, "get while scheduled", err, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
			_, err = a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(n), SecretString: aws.String("no")})
			wantAPIError(t, "put while scheduled", err, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
			_, err = a.any().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("again")})
			wantAPIError(t, "create with a scheduled name", err, apierr.InvalidRequest, apierr.MsgScheduledCreate)
			_, err = a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(n)})
			wantAPIError(t, "delete again without force", err, apierr.InvalidRequest, apierr.MsgAlreadyDeleted)
		}
		desc := describe(t, "del-seven")
		within(t, "DeletedDate", desc.DeletedDate, before, after)
		if len(desc.VersionIdsToStages) != 1 {
			t.Fatalf("versions while scheduled: %v", desc.VersionIdsToStages)
		}
		if l := listed(t, false); l["del-default"].Name != nil || l["del-seven"].Name != nil || l["del-force"].Name == nil {
			t.Fatalf("ListSecrets shows %v", slices.Sorted(maps.Keys(l)))
		}
		l := listed(t, true)
		if l["del-default"].DeletedDate == nil || l["del-seven"].DeletedDate == nil || l["del-force"].Name == nil || l["del-force"].DeletedDate != nil {
			t.Fatalf("ListSecrets IncludePlannedDeletion shows %v", slices.Sorted(maps.Keys(l)))
		}

		r, err := a.any().RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("del-default")})
		if err != nil || aws.ToString(r.Name) != "del-default" || !arnPattern("del-default").MatchString(aws.ToString(r.ARN)) {
			t.Fatalf("restore: %v %v", r, err)
		}
		if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String("del-default")}); aws.ToString(g.SecretString) != "kept" {
			t.Fatalf("restored value %q", aws.ToString(g.SecretString))
		}
		if d := describe(t, "del-default"); d.DeletedDate != nil {
			t.Fatalf("restored secret still has DeletedDate %v", d.DeletedDate)
		}
		if l := listed(t, false); l["del-default"].Name == nil {
			t.Fatal("restored secret is not listed")
		}

		// Force: on a scheduled secret and on an active one, the name is
		// free at once and a new secret with it gets a new ARN.
		forceARN := aws.ToString(describe(t, "del-force").ARN)
		for _, old := range []struct{ name, arn string }{{"del-seven", sevenARN}, {"del-force", forceARN}} {
			d, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(old.name), ForceDeleteWithoutRecovery: aws.Bool(true)})
			if err != nil || aws.ToString(d.ARN) != old.arn {
				t.Fatalf("force delete %s: %v %v", old.name, d, err)
			}
			_, err = a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(old.name)})
			wantAPIError(t, "describe after force delete", err, apierr.ResourceNotFound, notFound)
			again := create(t, &secretsmanager.CreateSecretInput{Name: aws.String(old.name), SecretString: aws.String("new")})
			if aws.ToString(again.ARN) == old.arn {
				t.Fatalf("re-created %s with the old ARN %s", old.name, old.arn)
			}
			_, err = a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(old.arn)})
			wantAPIError(t, "describe by the old ARN", err, apierr.ResourceNotFound, notFound)
			if g := get(t, &secretsmanager.GetSecretValueInput{SecretId: aws.String(old.name)}); aws.ToString(g.SecretString) != "new" || aws.ToString(g.ARN) != aws.ToString(again.ARN) {
				t.Fatalf("re-created %s reads %q from %s", old.name, aws.ToString(g.SecretString), aws.ToString(g.ARN))
			}
		}

		// Deleting what does not exist.
		for _, id := range []string{"del-never", "arn:aws:secretsmanager:us-east-1:000000000000:secret:del-never-AbC123"} {
			before := time.Now()
			d, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(id), ForceDeleteWithoutRecovery: aws.Bool(true)})
			if err != nil {
				t.Fatalf("force delete of nonexistent %s: %v", id, err)
			}
			// The ARN such a secret would have: the one given, or the
			// name's ARN in this region with a suffix.
			wantARN := arnPattern(id)
			if strings.HasPrefix(id, "arn:") {
				wantARN = regexp.MustCompile("^" + regexp.QuoteMeta(id) + "$")
			}
			if aws.ToString(d.Name) != id || !wantARN.MatchString(aws.ToString(d.ARN)) {
				t.Fatalf("force delete of nonexistent %s answered %s %s", id, aws.ToString(d.Name), aws.ToString(d.ARN))
			}
			within(t, "DeletionDate of a force delete", d.DeletionDate, before, time.Now())
			_, err = a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(id)})
			wantAPIError(t, "delete of nonexistent without force", err, apierr.ResourceNotFound, notFound)
			_, err = a.any().RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(id)})
			wantAPIError(t, "restore of nonexistent", err, apierr.ResourceNotFound, notFound)
		}
	})

	t.Run("X-Coffer-Index", func(t *testing.T) {
		index := func(t *testing.T, ans answer) uint64 {
			t.Helper()
			n, err := strconv.ParseUint(ans.index, 10, 64)
			if err != nil || n == 0 {
				t.Fatalf("%s on node %d answered %s %q", ans.op, ans.node, server.HeaderIndex, ans.index)
			}
			return n
		}
		for round := range 3 {
			w, r := round%3, (round+1)%3 // write on one node, read on the next
			name := fmt.Sprintf("indexed-%d", round)
			if _, err := a.clients[w].CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v")}); err != nil {
				t.Fatal(err)
			}
			wi := index(t, a.rec.last())
			if _, err := a.clients[r].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}); err != nil {
				t.Fatal(err)
			}
			if ri := index(t, a.rec.last()); ri < wi {
				t.Fatalf("read on node %d after a write at %d on node %d reports index %d", r, wi, w, ri)
			}
			if _, err := a.clients[r].PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("v2")}); err != nil {
				t.Fatal(err)
			}
			if pi := index(t, a.rec.last()); pi <= wi {
				t.Fatalf("a later write reports index %d, the earlier one %d", pi, wi)
			}
			pi := index(t, a.rec.last())
			if _, err := a.clients[w].DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)}); err != nil {
				t.Fatal(err)
			}
			if di := index(t, a.rec.last()); di < pi {
				t.Fatalf("describe on node %d after a write at %d reports %d", w, pi, di)
			}
		}
		// A refused read still says which state it was refused on.
		_, err := a.clients[1].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("indexed-none")})
		wantAPIError(t, "get nonexistent", err, apierr.ResourceNotFound, notFound)
		index(t, a.rec.last())
	})

	// Every successful answer in this test carried the index.
	seen := a.rec.all()
	if len(seen) < 50 {
		t.Fatalf("recorded only %d answers", len(seen))
	}
	for _, ans := range seen {
		if ans.status != 200 {
			continue
		}
		if n, err := strconv.ParseUint(ans.index, 10, 64); err != nil || n == 0 {
			t.Errorf("%s on node %d: %s %q", ans.op, ans.node, server.HeaderIndex, ans.index)
		}
	}
}

// checkListOrder fails unless the listed names come in creation order;
// secrets created in the same millisecond may come in either order.
func checkListOrder(t *testing.T, got []types.SecretListEntry, created map[string]int) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		p, q := got[i-1], got[i]
		if created[aws.ToString(p.Name)] > created[aws.ToString(q.Name)] && !aws.ToTime(p.CreatedDate).Equal(aws.ToTime(q.CreatedDate)) {
			t.Fatalf("listed %s (created %v) before %s (created %v)", aws.ToString(p.Name), p.CreatedDate, aws.ToString(q.Name), q.CreatedDate)
		}
	}
}

func TestAPI_ListSecretsPagination(t *testing.T) {
	c := servertest.New(t, 3)
	a := newAPINodes(c)
	ctx := ctxT(t)
	created := map[string]int{} // name -> creation sequence
	mk := func(t *testing.T, name string) {
		t.Helper()
		if _, err := a.any().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v")}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		created[name] = len(created)
	}
	// onNode sends one page to a chosen node, so a listing spans nodes.
	onNode := func(i int) func(*secretsmanager.Options) {
		return func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(c.Nodes[i%len(c.Nodes)].Endpoint) }
	}

	var first []string
	t.Run("10 secrets in pages of 3", func(t *testing.T) {
		for i := range 10 {
			first = append(first, fmt.Sprintf("page-%02d", i))
			mk(t, first[i])
		}
		var got []types.SecretListEntry
		tokens := map[string]bool{}
		p := secretsmanager.NewListSecretsPaginator(a.any(), &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(3)})
		pages := 0
		for p.HasMorePages() {
			page, err := p.NextPage(ctx, onNode(pages))
			if err != nil {
				t.Fatalf("page %d: %v", pages+1, err)
			}
			pages++
			if len(page.SecretList) == 0 || len(page.SecretList) > 3 {
				t.Fatalf("page %d has %d entries", pages, len(page.SecretList))
			}
			if tok := aws.ToString(page.NextToken); tok != "" {
				if tokens[tok] {
					t.Fatalf("NextToken repeated on page %d", pages)
				}
				tokens[tok] = true
			} else if page.NextToken != nil {
				t.Fatal(`last page sent NextToken ""`)
			}
			got = append(got, page.SecretList...)
		}
		var names []string
		for _, e := range got {
			names = append(names, aws.ToString(e.Name))
		}
		if pages != 4 || len(names) != 10 || !sameSet(names, first) {
			t.Fatalf("%d pages listed %v, want 4 pages of %v", pages, names, first)
		}
		checkListOrder(t, got, created)
		for _, e := range got {
			if len(e.SecretVersionsToStages) != 1 || !arnPattern(aws.ToString(e.Name)).MatchString(aws.ToString(e.ARN)) {
				t.Fatalf("entry %s: ARN %s versions %v", aws.ToString(e.Name), aws.ToString(e.ARN), e.SecretVersionsToStages)
			}
		}
	})

	t.Run("secrets created and deleted between pages", func(t *testing.T) {
		// stable secrets exist throughout; volatile ones are deleted while
		// the listing runs, some before it reaches them, some right after
		// they ended a page (the page's cursor).
		stable := slices.Clone(first)
		var volatile []string
		for i := range 15 {
			n := fmt.Sprintf("churn-%02d", i)
			mk(t, n)
			if i%3 == 0 {
				stable = append(stable, n)
			} else {
				volatile = append(volatile, n)
			}
		}
		isVolatile := func(n string) bool { return slices.Contains(volatile, n) }
		deleted := map[string]bool{}
		cursorDeletes, aheadDeletes := 0, 0
		seenAt := map[string]int{}
		var added []string
		var got []types.SecretListEntry
		p := secretsmanager.NewListSecretsPaginator(a.any(), &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(3)})
		for pages := 0; p.HasMorePages(); pages++ {
			if pages > 20 {
				t.Fatal("the listing does not end")
			}
			page, err := p.NextPage(ctx, onNode(pages))
			if err != nil {
				t.Fatalf("page %d: %v", pages+1, err)
			}
			for _, e := range page.SecretList {
				n := aws.ToString(e.Name)
				if _, dup := seenAt[n]; dup {
					t.Fatalf("%s listed twice (pages %d and %d)", n, seenAt[n]+1, pages+1)
				}
				if deleted[n] {
					t.Fatalf("%s listed after it was deleted", n)
				}
				seenAt[n] = pages
				got = append(got, e)
			}
			if !p.HasMorePages() {
				break
			}
			// The secret that ended this page (the cursor) is deleted,
			// for good or scheduled, in turn.
			if last := aws.ToString(page.SecretList[len(page.SecretList)-1].Name); isVolatile(last) {
				in := &secretsmanager.DeleteSecretInput{SecretId: aws.String(last), ForceDeleteWithoutRecovery: aws.Bool(cursorDeletes%2 == 0)}
				if _, err := a.any().DeleteSecret(ctx, in); err != nil {
					t.Fatal(err)
				}
				deleted[last] = true
				cursorDeletes++
			}
			// The farthest volatile secret not listed yet is deleted ahead
			// of the cursor, scheduled or for good in turn.
			for _, n := range slices.Backward(volatile) {
				if _, seen := seenAt[n]; !seen && !deleted[n] {
					in := &secretsmanager.DeleteSecretInput{SecretId: aws.String(n)}
					if aheadDeletes%2 == 1 {
						in.ForceDeleteWithoutRecovery = aws.Bool(true)
					}
					if _, err := a.any().DeleteSecret(ctx, in); err != nil {
						t.Fatal(err)
					}
					deleted[n] = true
					aheadDeletes++
					break
				}
			}
			// And a new secret appears, after everything listed so far.
			n := fmt.Sprintf("added-%02d", len(added))
			mk(t, n)
			added = append(added, n)
		}
		for _, n := range append(slices.Clone(stable), added...) {
			if _, ok := seenAt[n]; !ok {
				t.Errorf("%s existed throughout (or was added before a later page) but was not listed", n)
			}
		}
		if len(added) < 3 {
			t.Fatalf("only %d pages; the churn did not happen", len(added)+1)
		}
		checkListOrder(t, got, created)
		if cursorDeletes < 2 || aheadDeletes < 2 {
			t.Fatalf("deleted %d cursors and %d secrets ahead of the cursor; the churn did not cover both", cursorDeletes, aheadDeletes)
		}
	})
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
