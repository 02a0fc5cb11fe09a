package alibaba

import (
	"sync"

	"github.com/aliyun/credentials-go/credentials"
)

// lockedCredential serialises a credential's methods. credentials-go's default chain
// (providers.DefaultCredentialsProvider, v1.4.14) records the provider it last used
// without a lock, so concurrent calls race; the VPC and ECS clients share one of these.
type lockedCredential struct {
	mu    sync.Mutex
	inner credentials.Credential
}

var _ credentials.Credential = (*lockedCredential)(nil)

func (c *lockedCredential) GetCredential() (*credentials.CredentialModel, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.GetCredential()
}

func (c *lockedCredential) GetAccessKeyId() (*string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.GetAccessKeyId()
}

func (c *lockedCredential) GetAccessKeySecret() (*string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.GetAccessKeySecret()
}

func (c *lockedCredential) GetSecurityToken() (*string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.GetSecurityToken()
}

func (c *lockedCredential) GetBearerToken() *string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.GetBearerToken()
}

func (c *lockedCredential) GetType() *string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.GetType()
}
