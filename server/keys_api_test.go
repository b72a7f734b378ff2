package server_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// A request signed with an access key nobody has costs no leader round
// trip on the leader, and at most one per unknown id on a follower
// (server/keys.go); the answer is UnrecognizedClientException either way.
func TestAPI_UnknownAccessKeysDoNotReachTheLeader(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	stranger := region.Credentials{AccessKeyID: "AKIASTRANGERSTRANGER", SecretAccessKey: "0123456789abcdef0123456789abcdef01234567"}
	try := func(i int) {
		t.Helper()
		cl := servertest.NewClient(c.Nodes[i].Endpoint, servertest.Region, stranger, 0)
		_, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		wantAPIError(t, "unknown key on "+c.Nodes[i].ID, err, apierr.UnrecognizedClient, apierr.MsgUnknownAccessKey)
	}
	l := c.Leader()
	for range 20 {
		try(l)
	}
	if n := c.Nodes[l].Region.KeyCatchUps(); n != 0 {
		t.Fatalf("the leader caught up %d times for an unknown key", n)
	}
	f := c.Followers()[0]
	for range 20 {
		try(f)
	}
	if n := c.Nodes[f].Region.KeyCatchUps(); n != 1 {
		t.Fatalf("a follower caught up %d times for 20 requests with one unknown key, want 1", n)
	}
	// The root key still works everywhere.
	for _, i := range c.Running() {
		if _, err := c.Client(i).ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
			t.Fatal(err)
		}
	}
}
