package fsm_test

import (
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// keySamples has one key command of each type, every field set;
// sampleCommands includes them.
func keySamples(arn string) map[fsm.CommandType]any {
	return map[fsm.CommandType]any{
		fsm.CmdCreateKey: &fsm.CreateKey{PrevGen: 1, SealedKeyring: []byte{1, 2}, Alias: "alias/app",
			Key: fsm.Key{ID: "cust2", Description: "app key", Disabled: true, CreatedDate: t0, LastChangedDate: t0 + 1,
				Versions: []fsm.KeyVersion{{KEKID: "cust2/1", CreatedDate: t0}}}},
		fsm.CmdRotateKey:          &fsm.RotateKey{PrevGen: 2, SealedKeyring: []byte{3}, KeyID: "cust", Version: fsm.KeyVersion{KEKID: "cust/2", CreatedDate: t0 + 2}},
		fsm.CmdSetKeyState:        &fsm.SetKeyState{KeyID: "cust", Disabled: true, Date: t0 + 3},
		fsm.CmdSetAlias:           &fsm.SetAlias{Name: "alias/other", KeyID: "cust", Date: t0 + 4},
		fsm.CmdInitReplicationKey: &fsm.InitReplicationKey{PrevGen: 4, SealedKeyring: []byte{5}, KeyID: "replication/1", PublicKey: make([]byte, 32)},
		fsm.CmdRewrapKeys: &fsm.RewrapKeys{Items: []fsm.Rewrap{
			{ARN: arn, VersionID: "v1", From: "kek-1", KEKID: "cust/1", WrappedKey: []byte{4, 5}}}},
	}
}

// keysRegion is a harness with an initialized region (first KEK "kek-1",
// the default key's first version) and customer key "cust" (alias/cust).
func keysRegion(t testing.TB) *harness {
	h := newHarness(t)
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: "kek-1",
		SealedKeyring: []byte("gen0"), RootKey: fsm.AccessKey{AccessKeyID: "AKIA", Identity: "root"}, Date: t0})
	h.ok(fsm.CmdCreateKey, &fsm.CreateKey{PrevGen: 0, SealedKeyring: []byte("gen1"), Alias: "alias/cust",
		Key: fsm.Key{ID: "cust", CreatedDate: t0, LastChangedDate: t0, Versions: []fsm.KeyVersion{{KEKID: "cust/1", CreatedDate: t0}}}})
	return h
}

func wrappedBy(kekID, id, value string) fsm.NewVersion {
	env, err := testKeyring.Encrypt("kek-1", []byte(value), crypto.ValueAAD("test", id))
	if err != nil {
		panic(err)
	}
	env.KEKID = kekID // the FSM never unwraps: only the name matters here
	return fsm.NewVersion{VersionID: id, Value: env, Digest: testKeyring.Digest("s", []byte(value))}
}

func TestKeys_CreateRotateAndTheKeyringGeneration(t *testing.T) {
	h := keysRegion(t)
	rec := fsm.RegionRecord(h.txn())
	if rec.KeyringGen != 1 || rec.KeyringFormat != 2 || string(rec.SealedKeyring) != "gen1" || rec.LegacyKEKID() != "" {
		t.Fatalf("region after CreateKey: gen %d format %d keyring %q", rec.KeyringGen, rec.KeyringFormat, rec.SealedKeyring)
	}
	// A change computed against an older generation is refused whole.
	h.fail(fsm.CmdRotateKey, &fsm.RotateKey{PrevGen: 0, SealedKeyring: []byte("stale"), KeyID: "cust",
		Version: fsm.KeyVersion{KEKID: "cust/2", CreatedDate: t0 + 1}},
		apierr.InternalServiceError, "the region's keyring changed while this change was computed; nothing was changed: retry")
	h.fail(fsm.CmdCreateKey, &fsm.CreateKey{PrevGen: 1, SealedKeyring: []byte("x"), Alias: "alias/cust",
		Key: fsm.Key{ID: "other", Versions: []fsm.KeyVersion{{KEKID: "other/1"}}}},
		apierr.ResourceExists, "An alias with the name alias/cust already exists")
	h.fail(fsm.CmdCreateKey, &fsm.CreateKey{PrevGen: 1, SealedKeyring: []byte("x"), Alias: "alias/aws/mine",
		Key: fsm.Key{ID: "other", Versions: []fsm.KeyVersion{{KEKID: "other/1"}}}},
		apierr.InvalidParameter, `alias name "alias/aws/mine" is reserved: names under alias/aws/ belong to AWS managed keys`)
	h.ok(fsm.CmdRotateKey, &fsm.RotateKey{PrevGen: 1, SealedKeyring: []byte("gen2"), KeyID: "cust",
		Version: fsm.KeyVersion{KEKID: "cust/2", CreatedDate: t0 + 1}})
	k := fsm.KeyByID(h.txn(), "cust")
	if len(k.Versions) != 2 || k.Current().KEKID != "cust/2" || fsm.RegionRecord(h.txn()).KeyringGen != 2 {
		t.Fatalf("after rotation: %+v", k)
	}
	// The default key has no record until it is rotated.
	d := fsm.DefaultKey(h.txn())
	if d.ID != fsm.DefaultKeyID || d.Current().KEKID != "kek-1" {
		t.Fatalf("default key: %+v", d)
	}
	h.ok(fsm.CmdRotateKey, &fsm.RotateKey{PrevGen: 2, SealedKeyring: []byte("gen3"), KeyID: fsm.DefaultKeyID,
		Version: fsm.KeyVersion{KEKID: fsm.KEKIDFor(fsm.DefaultKeyID, 2), CreatedDate: t0 + 2}})
	d = fsm.DefaultKey(h.txn())
	if len(d.Versions) != 2 || d.Versions[0].KEKID != "kek-1" || d.Current().KEKID != "default/2" {
		t.Fatalf("default key after rotation: %+v", d)
	}
	if got := fsm.KeyOfKEK(h.txn(), "kek-1"); got == nil || got.ID != fsm.DefaultKeyID {
		t.Fatalf("KeyOfKEK(kek-1) = %+v", got)
	}
	if got := fsm.KeyOfKEK(h.txn(), "cust/9"); got != nil {
		t.Fatalf("KeyOfKEK of a version that does not exist = %+v", got)
	}
	// A rekey computed before a key change is refused too.
	h.fail(fsm.CmdRekey, &fsm.Rekey{PrevGen: 2, SealedKeyring: []byte("x"), AccessKeys: []fsm.AccessKey{{AccessKeyID: "AKIA", Identity: "root"}}},
		apierr.InvalidRequest, "a key was created or rotated while the rekey was computed; nothing was changed: rekey again")
	h.ok(fsm.CmdRekey, &fsm.Rekey{PrevGen: 3, SealedKeyring: []byte("gen4"), KeyringFormat: 2,
		AccessKeys: []fsm.AccessKey{{AccessKeyID: "AKIA", Identity: "root"}}})
	if rec := fsm.RegionRecord(h.txn()); rec.KeyringGen != 4 || string(rec.SealedKeyring) != "gen4" {
		t.Fatalf("after rekey: gen %d", rec.KeyringGen)
	}
}

func TestKeys_ResolveByIDARNAndAlias(t *testing.T) {
	h := keysRegion(t)
	h.ok(fsm.CmdSetAlias, &fsm.SetAlias{Name: "alias/app/db", KeyID: "cust", Date: t0})
	keyARN := fsm.KeyARN(testRegion, testAccount, "cust")
	for given, want := range map[string]string{
		"":                         fsm.DefaultKeyID,
		"alias/aws/secretsmanager": fsm.DefaultKeyID,
		"default":                  fsm.DefaultKeyID,
		"cust":                     "cust",
		keyARN:                     "cust",
		"alias/cust":               "cust",
		"alias/app/db":             "cust",
		"arn:aws:kms:" + testRegion + ":" + testAccount + ":alias/cust": "cust",
		"nope":       "",
		"alias/nope": "",
		"arn:aws:kms:eu-west-1:" + testAccount + ":key/cust":                "",
		"arn:aws:kms:" + testRegion + ":999999999999:key/cust":              "",
		"arn:aws:kms:" + testRegion + ":" + testAccount + ":thing/cust":     "",
		"arn:aws:kms:" + testRegion + ":" + testAccount + ":key/alias/cust": "",
	} {
		k := fsm.ResolveKey(h.txn(), given, testRegion, testAccount)
		got := ""
		if k != nil {
			got = k.ID
		}
		if got != want {
			t.Errorf("ResolveKey(%q) = %q, want %q", given, got, want)
		}
	}
	// Re-pointing and deleting aliases.
	h.ok(fsm.CmdCreateKey, &fsm.CreateKey{PrevGen: 1, SealedKeyring: []byte("gen2"),
		Key: fsm.Key{ID: "k2", Versions: []fsm.KeyVersion{{KEKID: "k2/1"}}}})
	h.ok(fsm.CmdSetAlias, &fsm.SetAlias{Name: "alias/cust", KeyID: "k2", Date: t0 + 1})
	if k := fsm.ResolveKey(h.txn(), "alias/cust", testRegion, testAccount); k == nil || k.ID != "k2" {
		t.Fatalf("re-pointed alias resolves to %+v", k)
	}
	h.ok(fsm.CmdSetAlias, &fsm.SetAlias{Name: "alias/cust", Date: t0 + 2})
	if fsm.AliasByName(h.txn(), "alias/cust") != nil {
		t.Fatal("alias not deleted")
	}
	h.fail(fsm.CmdSetAlias, &fsm.SetAlias{Name: "alias/cust", Date: t0 + 3}, apierr.ResourceNotFound, "Alias alias/cust is not found.")
	h.fail(fsm.CmdSetAlias, &fsm.SetAlias{Name: "alias/x", KeyID: "nope"}, apierr.ResourceNotFound, "Key 'nope' does not exist.")
	h.fail(fsm.CmdSetAlias, &fsm.SetAlias{Name: "alias/a b", KeyID: "k2"}, apierr.InvalidParameter,
		`alias name "alias/a b" may contain only letters, digits, '/', '_' and '-'`)
	h.fail(fsm.CmdSetAlias, &fsm.SetAlias{Name: "cust", KeyID: "k2"}, apierr.InvalidParameter,
		`alias name "cust" must start with "alias/" and name something`)
}

// A version's data key must be wrapped by a version of an enabled key,
// checked when the command applies: a key disabled between the node's
// choice and the apply refuses the write whole.
func TestKeys_DisabledKeysWrapNothingNew(t *testing.T) {
	h := keysRegion(t)
	a := arnOf("a", "aaaaaa")
	v1 := wrappedBy("cust/1", "v1", "one")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: a, Name: "a", KmsKeyID: "alias/cust", KeyID: "cust", Version: &v1, Date: t0})
	if s := h.secret(a); s.KeyID != "cust" || s.KmsKeyID != "alias/cust" {
		t.Fatalf("secret keys: %q %q", s.KeyID, s.KmsKeyID)
	}
	h.fail(fsm.CmdSetKeyState, &fsm.SetKeyState{KeyID: fsm.DefaultKeyID, Disabled: true}, apierr.InvalidParameter,
		"the default key (alias/aws/secretsmanager) cannot be disabled")
	h.ok(fsm.CmdSetKeyState, &fsm.SetKeyState{KeyID: fsm.DefaultKeyID, Disabled: false}) // always enabled: a no-op
	h.ok(fsm.CmdSetKeyState, &fsm.SetKeyState{KeyID: "cust", Disabled: true, Date: t0 + 1})
	if !fsm.KeyByID(h.txn(), "cust").Disabled {
		t.Fatal("key not disabled")
	}
	disabled := "Secrets Manager can't encrypt the protected secret text using the provided KMS key " +
		fsm.KeyARN(testRegion, testAccount, "cust") + ": the key is disabled."
	h.fail(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: a, Version: wrappedBy("cust/1", "v2", "two"), Date: t0 + 2},
		apierr.EncryptionFailure, disabled)
	v3 := wrappedBy("cust/1", "v3", "three")
	h.fail(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf("b", "bbbbbb"), Name: "b", KeyID: "cust", Version: &v3, Date: t0 + 2},
		apierr.EncryptionFailure, disabled)
	h.fail(fsm.CmdRotateKey, &fsm.RotateKey{PrevGen: 1, SealedKeyring: []byte("x"), KeyID: "cust", Version: fsm.KeyVersion{KEKID: "cust/2"}},
		apierr.InvalidRequest, "key cust is disabled: enable it first")
	h.fail(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: a, Version: wrappedBy("gone/1", "v2", "two"), Date: t0 + 2},
		apierr.EncryptionFailure, "Secrets Manager can't find the specified KMS key.")
	h.ok(fsm.CmdSetKeyState, &fsm.SetKeyState{KeyID: "cust", Disabled: false, Date: t0 + 3})
	h.ok(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: a, Version: wrappedBy("cust/1", "v2", "two"), Date: t0 + 4})
}

// RewrapKeys moves a data key only if it is still wrapped as it was read,
// and changes nothing a client sees.
func TestKeys_RewrapIsConditionalAndInvisible(t *testing.T) {
	h := keysRegion(t)
	a := arnOf("a", "aaaaaa")
	v1 := wrappedBy("cust/1", "v1", "one")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: a, Name: "a", KeyID: "cust", Version: &v1, Date: t0})
	h.ok(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: a, Version: wrappedBy("cust/1", "v2", "two"), Date: t0 + 1})
	h.ok(fsm.CmdRotateKey, &fsm.RotateKey{PrevGen: 1, SealedKeyring: []byte("gen2"), KeyID: "cust",
		Version: fsm.KeyVersion{KEKID: "cust/2", CreatedDate: t0 + 2}})
	before := h.secret(a)
	res := h.ok(fsm.CmdRewrapKeys, &fsm.RewrapKeys{Items: []fsm.Rewrap{
		{ARN: a, VersionID: "v1", From: "cust/1", KEKID: "cust/2", WrappedKey: []byte("new1")},
		{ARN: a, VersionID: "v2", From: "kek-1", KEKID: "cust/2", WrappedKey: []byte("stale")}, // read before a change: skipped
		{ARN: a, VersionID: "v9", From: "cust/1", KEKID: "cust/2", WrappedKey: []byte("gone")},
		{ARN: arnOf("z", "zzzzzz"), VersionID: "v1", From: "cust/1", KEKID: "cust/2", WrappedKey: []byte("gone")},
		{ARN: a, VersionID: "v2", From: "cust/1", KEKID: "nope/1", WrappedKey: []byte("unknown KEK")},
	}})
	if res.Count != 1 {
		t.Fatalf("applied %d items, want 1", res.Count)
	}
	after := h.secret(a)
	if v := after.Version("v1"); v.Value.KEKID != "cust/2" || string(v.Value.WrappedKey) != "new1" ||
		string(v.Value.Ciphertext) != string(before.Version("v1").Value.Ciphertext) {
		t.Fatalf("v1 after rewrap: %+v", v.Value)
	}
	if v := after.Version("v2"); v.Value.KEKID != "cust/1" {
		t.Fatalf("v2 moved: %+v", v.Value)
	}
	if after.ModifyIndex != before.ModifyIndex || after.LastChangedDate != before.LastChangedDate {
		t.Fatal("a re-wrap showed as a change of the secret")
	}
	if before.Version("v1").Value.KEKID != "cust/1" {
		t.Fatal("the re-wrap changed a secret a reader held")
	}
	// UpdateSecret's re-wraps (a new key for the secret) must all find
	// their versions as read, or nothing changes.
	h.fail(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, KmsKeyID: sp(""), KeyID: sp(""), Date: t0 + 5, Rewraps: []fsm.Rewrap{
		{ARN: a, VersionID: "v2", From: "cust/1", KEKID: "kek-1", WrappedKey: []byte("w2")},
		{ARN: a, VersionID: "v1", From: "cust/1", KEKID: "kek-1", WrappedKey: []byte("w1")},
	}}, apierr.InternalServiceError, "the secret's data keys were re-wrapped while the update was prepared; nothing was changed: retry")
	// A labelled version the node did not see (written after it read the
	// secret) would stay under the old key: refused too.
	h.fail(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, KmsKeyID: sp(""), KeyID: sp(""), Date: t0 + 5, Rewraps: []fsm.Rewrap{
		{ARN: a, VersionID: "v2", From: "cust/1", KEKID: "kek-1", WrappedKey: []byte("w2")},
	}}, apierr.InternalServiceError, "the secret changed while the update was prepared; nothing was changed: retry")
	h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, KmsKeyID: sp(""), KeyID: sp(""), Date: t0 + 5, Rewraps: []fsm.Rewrap{
		{ARN: a, VersionID: "v2", From: "cust/1", KEKID: "kek-1", WrappedKey: []byte("w2")},
		{ARN: a, VersionID: "v1", From: "cust/2", KEKID: "kek-1", WrappedKey: []byte("w1")},
	}})
	s := h.secret(a)
	if s.KeyID != "" || s.KmsKeyID != "" || s.Version("v1").Value.KEKID != "kek-1" || s.Version("v2").Value.KEKID != "kek-1" {
		t.Fatalf("after moving the secret to the default key: %q %+v %+v", s.KeyID, s.Version("v1").Value, s.Version("v2").Value)
	}
	// Keys and aliases survive a snapshot and a reset.
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 6})
	restored := h.replay()
	txn, _ := restored.ReadTxn()
	if k := fsm.KeyByID(txn, "cust"); k == nil || len(k.Versions) != 2 || fsm.AliasByName(txn, "alias/cust") == nil {
		t.Fatalf("keys after reset and replay: %+v", k)
	}
}

// The replication key pair is added once, with the keyring that holds
// its private half, like any keyring change.
func TestKeys_InitReplicationKey(t *testing.T) {
	h := keysRegion(t)
	pub := make([]byte, 32)
	pub[0] = 9
	h.fail(fsm.CmdInitReplicationKey, &fsm.InitReplicationKey{PrevGen: 1, SealedKeyring: []byte("x"), KeyID: "replication/1", PublicKey: []byte{1}},
		apierr.InvalidParameter, "a replication key needs a keyring id and a 32-byte X25519 public key")
	h.fail(fsm.CmdInitReplicationKey, &fsm.InitReplicationKey{PrevGen: 0, SealedKeyring: []byte("x"), KeyID: "replication/1", PublicKey: pub},
		apierr.InternalServiceError, "the region's keyring changed while this change was computed; nothing was changed: retry")
	h.ok(fsm.CmdInitReplicationKey, &fsm.InitReplicationKey{PrevGen: 1, SealedKeyring: []byte("gen2"), KeyID: "replication/1", PublicKey: pub})
	rec := fsm.RegionRecord(h.txn())
	if rec.ReplicationKeyID != "replication/1" || rec.ReplicationPublicKey[0] != 9 || rec.KeyringGen != 2 || string(rec.SealedKeyring) != "gen2" {
		t.Fatalf("region after InitReplicationKey: %+v", rec)
	}
	h.fail(fsm.CmdInitReplicationKey, &fsm.InitReplicationKey{PrevGen: 2, SealedKeyring: []byte("x"), KeyID: "replication/2", PublicKey: pub},
		apierr.InvalidRequest, "the region already has a replication key")
}
