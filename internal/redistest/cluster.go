package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of three masters on loopback ports, owned by one test.
type Cluster struct {
	Addrs   []string
	servers []*Server
}

// StartCluster runs three redis-server processes in cluster mode and joins them with
// redis-cli --cluster create; everything is stopped at cleanup.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		s := StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf",
			"--cluster-node-timeout", "2000")
		c.servers = append(c.servers, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	defer client.Close()
	testutil.EventuallyNoError(t, 15*time.Second, "the cluster's state ok", func() error {
		info, err := client.ClusterInfo(context.Background()).Result()
		if err != nil {
			return err
		}
		if !contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s", info)
		}
		// Every master must agree before scripts can run on any slot.
		return client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
			i, err := m.ClusterInfo(ctx).Result()
			if err != nil || !contains(i, "cluster_state:ok") {
				return fmt.Errorf("node %s not ready: %v", m.Options().Addr, err)
			}
			return nil
		})
	})
	return c
}

// Client returns a cluster client, closed at cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
