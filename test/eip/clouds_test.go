package eip_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	alibabaemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/alibaba"
	awsemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/aws"
	tencentemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/tencent"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/alibaba"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/aws"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/tencent"
)

// The SDK cases: each provider's official SDK, unmodified, against its emulator on
// 127.0.0.1, which checks the SDK's signatures in full with the test's keys. Every
// scenario of TestEIP runs through each.
func init() {
	clouds = append(clouds,
		cloudCase{name: "alibaba", label: "alibaba-sdk", connect: connectAlibaba},
		cloudCase{name: "aws", label: "aws-sdk", connect: connectAWS, sync: true},
		cloudCase{name: "tencent", label: "tencent-sdk", connect: connectTencent},
	)
}

const (
	testKeyID  = "AKIDORBWEAVERTEST0001"
	testSecret = "orbweaver-test-secret-never-logged"
)

// isolate keeps the SDKs' credential chains on the test's environment: no home
// directory files, no instance metadata service.
func isolate(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2",
		"ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"} {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
}

func connectAlibaba(t testing.TB, cloud *eiptest.Cloud) eip.Provider {
	isolate(t)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", testKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", testSecret)
	srv := httptest.NewServer(alibabaemu.NewServer(cloud, alibabaemu.Options{AccessKeyID: testKeyID, AccessKeySecret: testSecret, Region: "cn-hangzhou"}))
	t.Cleanup(srv.Close)
	p, err := alibaba.New(context.Background(), eip.Config{Region: "cn-hangzhou", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func connectAWS(t testing.TB, cloud *eiptest.Cloud) eip.Provider {
	isolate(t)
	t.Setenv("AWS_ACCESS_KEY_ID", testKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	srv := httptest.NewServer(awsemu.NewServer(cloud, awsemu.Options{AccessKeyID: testKeyID, SecretAccessKey: testSecret, Region: "us-east-1"}))
	t.Cleanup(srv.Close)
	p, err := aws.New(context.Background(), eip.Config{Region: "us-east-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func connectTencent(t testing.TB, cloud *eiptest.Cloud) eip.Provider {
	isolate(t)
	t.Setenv("TENCENTCLOUD_SECRET_ID", testKeyID)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", testSecret)
	srv := httptest.NewServer(tencentemu.New(cloud, tencentemu.WithCredential(testKeyID, testSecret), tencentemu.WithRegion("ap-guangzhou")))
	t.Cleanup(srv.Close)
	p, err := tencent.New(context.Background(), eip.Config{Region: "ap-guangzhou", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
