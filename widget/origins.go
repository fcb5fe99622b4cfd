package widget

import (
	"net"
	"net/url"
	"strings"

	"github.com/chatgate/chatgate/configs"
)

// listenOrigins are the origins a site allows besides its configured ones: in development, a site
// allowing a loopback origin (the example's http://localhost:8080) also allows the loopback origins of
// the port the gateway listens on, so the demo page the gateway serves works whatever --listen says.
// Production never widens: an origin is allowed there only when it is configured.
func listenOrigins(env, listen string, site configs.Site) []string {
	if env != "development" || !allowsLoopback(site.AllowedOrigins) {
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "0" {
		return nil
	}
	hosts := []string{"localhost", "127.0.0.1"}
	switch ip := net.ParseIP(host); {
	case host == "" || host == "localhost" || ip != nil && (ip.IsUnspecified() || ip.IsLoopback()):
		if ip != nil && ip.To4() == nil {
			hosts = append(hosts, "["+ip.String()+"]")
		}
	case ip != nil && ip.To4() == nil:
		hosts = append(hosts, "["+host+"]") // the address it listens on, reached directly
	default:
		hosts = append(hosts, host)
	}
	var out []string
	for _, h := range hosts {
		o := "http://" + h + ":" + port
		if !contains(site.AllowedOrigins, o) {
			out = append(out, o)
		}
	}
	return out
}

func allowsLoopback(origins []string) bool {
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "http" {
			continue
		}
		if h := u.Hostname(); h == "localhost" || net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback() {
			return true
		}
	}
	return false
}

func contains(origins []string, origin string) bool {
	for _, o := range origins {
		if strings.TrimRight(o, "/") == origin {
			return true
		}
	}
	return false
}
