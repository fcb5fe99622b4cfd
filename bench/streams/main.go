// Command streams opens many Server-Sent Event streams to a gateway on loopback, holds them, and
// reports the gateway's resident memory (read from /proc/<pid>/status) before and while they are open,
// and that a published event reaches them. Bounded: it closes everything and exits by itself.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

func main() {
	target := flag.String("url", "http://127.0.0.1:8080/v1/agents/me/events", "stream URL (loopback only)")
	token := flag.String("token", "", "Bearer token")
	n := flag.Int("n", 10000, "streams to open (at most 20000)")
	pid := flag.Int("pid", 0, "the gateway's process id, for its memory")
	hold := flag.Duration("hold", 5*time.Second, "how long to hold the streams open (at most 1m)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || !(u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost") {
		fmt.Fprintln(os.Stderr, "streams: the URL must be on loopback")
		os.Exit(2)
	}
	if *n > 20000 {
		*n = 20000
	}
	if *hold > time.Minute {
		*hold = time.Minute
	}
	before := rss(*pid)
	var opened, failed atomic.Int64
	conns := make([]net.Conn, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	start := time.Now()
	for i := 0; i < *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", u.RequestURI(), u.Host, *token)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			status, err := r.ReadString('\n')
			if err != nil || !strings.Contains(status, " 200 ") {
				failed.Add(1)
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			conns[i] = c
			opened.Add(1)
		}(i)
	}
	wg.Wait()
	time.Sleep(*hold)
	during := rss(*pid)
	fmt.Printf("streams=%d opened=%d failed=%d open_time=%s gateway_rss_before=%.1fMB gateway_rss_open=%.1fMB per_stream=%.1fKB\n",
		*n, opened.Load(), failed.Load(), time.Since(start).Round(time.Millisecond)-*hold,
		float64(before)/1e6, float64(during)/1e6, float64(during-before)/float64(max(opened.Load(), 1))/1e3)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
