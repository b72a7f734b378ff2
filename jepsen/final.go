package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/jepsen/check"
)

// finalReads runs after healing: a get of AWSCURRENT and of AWSPREVIOUS
// of every register secret on every node and a DescribeSecret of every
// churn name on every node (recorded in the history, so the
// linearizability checks cover them), then, for every put that was not a definite failure, a
// GetSecretValue by VersionId, and for every attempted create a
// DescribeSecret, each on one node (rotating), retried a few times on
// errors. Results go to final.jsonl.
func (w *workload) finalReads(ops []check.Op, out *check.Writer) {
	proc := w.rec.newProcess()
	for _, s := range w.secrets {
		for i := range w.clients {
			for attempt := 0; attempt < 5; attempt++ {
				if op := w.get(context.Background(), i, proc, s, "", true); op.Status == check.StatusOK {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			for attempt := 0; attempt < 5; attempt++ {
				if op := w.get(context.Background(), i, proc, s, check.StagePrevious, true); op.Status == check.StatusOK {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	for _, name := range w.churnList {
		for i := range w.clients {
			for attempt := 0; attempt < 5; attempt++ {
				if op := w.describe(context.Background(), i, proc, name, true); op.Status == check.StatusOK {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	type job struct {
		kind, secret, version string
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := g % len(w.clients)
			for j := range jobs {
				var fr check.FinalRead
				for attempt := 0; attempt < 5; attempt++ {
					fr = w.finalRead(i, j.kind, j.secret, j.version)
					if fr.Err == "" {
						break
					}
					i = (i + 1) % len(w.clients)
					time.Sleep(200 * time.Millisecond)
				}
				out.Write(fr)
			}
		}()
	}
	asked := map[[2]string]bool{}
	for _, o := range ops {
		switch {
		case o.Status == check.StatusFail || o.Final:
		case o.Kind == check.KindPut:
			if asked[[2]string{o.Secret, o.Token}] {
				continue // a retry of a token already queued
			}
			asked[[2]string{o.Secret, o.Token}] = true
			jobs <- job{"version", o.Secret, o.Token}
		case o.Kind == check.KindCreate:
			jobs <- job{"exists", o.Secret, ""}
		}
	}
	close(jobs)
	wg.Wait()
}

func (w *workload) finalRead(i int, kind, secret, version string) check.FinalRead {
	fr := check.FinalRead{Kind: kind, Node: w.nodeIDs[i], Secret: secret, VersionID: version}
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	var err error
	if kind == "version" {
		var out *secretsmanager.GetSecretValueOutput
		out, err = w.clients[i].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret), VersionId: aws.String(version)})
		if err == nil {
			fr.Found, fr.Value = true, aws.ToString(out.SecretString)
			fr.Stages, fr.Index = nonNil(out.VersionStages), indexOf(out.ResultMetadata)
			if out.CreatedDate != nil {
				fr.Created = out.CreatedDate.UnixMilli()
			}
			if got := aws.ToString(out.VersionId); got != version {
				fr.Value = "version id mismatch: " + got
			}
		}
	} else {
		var out *secretsmanager.DescribeSecretOutput
		out, err = w.clients[i].DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
		fr.Found = err == nil && aws.ToString(out.Name) == secret
	}
	var ae smithy.APIError
	switch {
	case err == nil:
	case errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException":
		fr.Found = false
	default:
		fr.Err = err.Error()
	}
	return fr
}
