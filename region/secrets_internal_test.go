package region

import (
	"testing"
	"time"

	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
)

// A value is bound to its version's primary ARN, not to the ARN of the
// secret that holds it: a replica region, where the secret's ARN names
// another region, opens the same ciphertext. A version without a primary
// ARN (written before the field) is bound to the secret's own ARN.
func TestOpenValue_BindsThePrimaryARN(t *testing.T) {
	kr := crypto.NewKeyring("k1")
	r := &Region{cfg: Config{Clock: time.Now}, logger: hclog.NewNullLogger()}
	primary := "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
	replica := "arn:aws:secretsmanager:eu-west-1:000000000000:secret:db-AbCdEf"
	nv, err := Seal(kr, kr.KEKID, primary, "v1", []byte("s3cr3t"), false)
	if err != nil {
		t.Fatal(err)
	}
	if nv.PrimaryARN != primary {
		t.Fatalf("sealed version binds %q", nv.PrimaryARN)
	}
	open := func(arn, primaryARN string) (string, error) {
		v := &fsm.Version{VersionID: "v1", Value: nv.Value, PrimaryARN: primaryARN}
		plain, err := r.OpenValue(kr, &fsm.Secret{ARN: arn, Versions: []*fsm.Version{v}}, v)
		return string(plain), err
	}
	if got, err := open(replica, primary); err != nil || got != "s3cr3t" {
		t.Fatalf("in a replica region: %q %v", got, err)
	}
	if got, err := open(primary, ""); err != nil || got != "s3cr3t" {
		t.Fatalf("a version without a primary ARN, in its own region: %q %v", got, err)
	}
	if _, err := open(replica, ""); err == nil {
		t.Fatal("a value bound to another ARN opened")
	}
}
