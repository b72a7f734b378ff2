package server_test

import (
	"context"
	"runtime"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// withHeader adds a header to one SDK call, e.g. X-Coffer-Consistency.
func withHeader(key, value string) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Build.Add(middleware.BuildMiddlewareFunc("coffer-header", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					req.Header.Set(key, value)
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
