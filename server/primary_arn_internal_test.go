package server

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
func TestReadValue_BindsThePrimaryARN(t *testing.T) {
	kr := crypto.NewKeyring("k1")
	r := &Region{cfg: RegionConfig{Clock: time.Now}, logger: hclog.NewNullLogger()}
	primary := "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
	replica := "arn:aws:secretsmanager:eu-west-1:000000000000:secret:db-AbCdEf"
	value := "s3cr3t"
	sv := secretValue{SecretString: &value}
	nv, err := sv.seal(kr, primary, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if nv.PrimaryARN != primary {
		t.Fatalf("sealed version binds %q", nv.PrimaryARN)
	}
	version := func(primaryARN string) *fsm.Version {
		return &fsm.Version{VersionID: "v1", Stages: []string{fsm.StageCurrent}, Value: nv.Value, PrimaryARN: primaryARN}
	}
	read := func(arn string, v *fsm.Version) (string, error) {
		var reads []accessRead
		out, err := r.readValue(kr, &fsm.Secret{ARN: arn, Name: "db", Versions: []*fsm.Version{v}}, nil, nil, &reads)
		if err != nil {
			return "", err
		}
		return *out.SecretString, nil
	}
	if got, err := read(replica, version(primary)); err != nil || got != value {
		t.Fatalf("in a replica region: %q %v", got, err)
	}
	if got, err := read(primary, version("")); err != nil || got != value {
		t.Fatalf("a version without a primary ARN, in its own region: %q %v", got, err)
	}
	if _, err := read(replica, version("")); err == nil {
		t.Fatal("a value bound to another ARN opened")
	}
}
