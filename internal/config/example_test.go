package config_test

import (
	"errors"
	"fmt"

	"github.com/kubepool/kubepool/internal/config"
)

func ExampleParse() {
	c, err := config.Parse("nodepool.yaml", []byte(`
zookeeper-servers:
  - host: zk.example.org
labels:
  - name: pod-debian
    min-ready: 1
providers:
  - name: cluster1
    driver: kubernetes
    context: ci-admin
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: pod-debian
            type: pod
            image: docker.io/library/debian:bookworm
            cpu: 2
            memory: 4096
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	pool := c.Providers[0].Pools[0]
	label := pool.Labels[0]
	fmt.Println(c.ZooKeeper.Addrs(), pool.MaxServers, label.Memory.String(), label.PythonPath)
	fmt.Println(label.Resources().Map())

	_, err = config.Parse("nodepool.yaml", []byte(`
zookeeper-servers: [{host: zk.example.org}]
labels: [{name: pod}]
providers:
  - name: cluster1
    driver: kubernetes
    pools:
      - name: main
        labels: [{name: pod, type: pod, image: debian, memory: 12Zi, cpu: lots}]
`))
	fmt.Println(errors.Is(err, config.ErrInvalid))
	fmt.Println(err)
	// Output:
	// [zk.example.org:2181] 10 4Gi auto
	// map[cores:2 instances:1 ram:4096]
	// true
	// nodepool.yaml:9: providers[0].pools[0].labels[0].memory: "12Zi" is not a quantity
	// nodepool.yaml:9: providers[0].pools[0].labels[0].cpu: "lots" is not a quantity
}
