// peer: a Go service that speaks Microbus on NATS, written from
// /work/shared/reference/microbus-wire.md and subject-layout.md (not from
// the Rust runtime), with Go's standard net/http for every message and the
// NATS Go client as Debian packages it. Built by ci/deps.sh into
// target/interop/peer; runtime/tests/interop.rs runs it against buswarden
// services on a real nats-server.
//
//	peer serve  -url URL -host HOST [-instances N]   serve go.example's endpoints until stdin closes
//	peer call   -url URL -host HOST -target HOST      call TARGET's endpoints, print one JSON line per scenario
//	peer parse-request FILE | parse-response FILE     read a message with http.ReadRequest/ReadResponse, print it as JSON
//
// Endpoints served (host given by -host):
//
//	GET  :443/hello?name=N   -> {"greeting":"hello N"}
//	POST :443/echo {"data"}  -> {"data":…,"length":n}
//	GET  :443/slow?ms=N      -> {"done":true} after N ms
//	GET  :443/fail           -> Err 409 "go says no"
//	GET  :443/whoami         -> the caller, actor, baggage, language, forwarded host, trace id, depth, budget
//	GET  :443/recurse        -> calls TARGET /recurse (ping-pong until the depth guard)
//	GET  :888/ping           -> {"pong":"<instance id>"} (also on the broadcast host all)
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	plane         = "microbus"
	ackTimeout    = 300 * time.Millisecond
	roundTrip     = 20 * time.Millisecond
	maxDepth      = 64
	defaultBudget = 20 * time.Second
)

// ---- subjects (subject-layout.md) ----

func flatten(host string) string {
	var b strings.Builder
	for _, c := range []byte(strings.ToLower(host)) {
		switch {
		case c == '.':
			b.WriteByte('_')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

func unflatten(token string) string {
	var b strings.Builder
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c == '_' {
			b.WriteByte('.')
		} else if c == '%' && i+2 < len(token) {
			v, _ := strconv.ParseUint(token[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func escapeSegment(seg string) string {
	if seg == "" {
		return "_"
	}
	var b strings.Builder
	for _, c := range []byte(seg) {
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

func pathTokens(path string) string {
	path = strings.TrimPrefix(path, "/")
	if path == "" {
		return "_"
	}
	parts := strings.Split(path, "/")
	for i, p := range parts {
		parts[i] = escapeSegment(p)
	}
	return strings.Join(parts, ".")
}

func trust(port int) string {
	if port == 666 {
		return "danger"
	}
	return "safe"
}

func requestSubject(port int, src, host, pos, method, path string) string {
	if pos == "" {
		pos = "_"
	}
	return fmt.Sprintf("%s.%s.%d.%s.%s.%s.%s.%s", plane, trust(port), port, flatten(src), flatten(host), pos, strings.ToUpper(method), pathTokens(path))
}

// ---- ids ----

func randomString(n int, alphabet string) string {
	out := make([]byte, n)
	for i := range out {
		v, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		out[i] = alphabet[v.Int64()]
	}
	return string(out)
}

func newMsgID() string {
	return randomString(8, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
}

// ---- the frame of a request being handled ----

type frame struct {
	caller  string
	depth   int
	headers http.Header
}

type frameKey struct{}

func frameOf(ctx context.Context) *frame {
	if f, ok := ctx.Value(frameKey{}).(*frame); ok {
		return f
	}
	return &frame{headers: http.Header{}}
}

// ---- errors ----

type busError struct {
	Status  int
	Message string
}

func (e *busError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Message) }

func errorBody(status int, msg string) []byte {
	b, _ := json.Marshal(map[string]interface{}{"err": map[string]interface{}{
		"error": msg, "statusCode": status, "trace": "", "stack": []interface{}{},
	}})
	return b
}

// ---- the peer ----

type incoming struct {
	responder string
	resp      *http.Response
	body      []byte
}

type Peer struct {
	nc       *nats.Conn
	host     string
	id       string
	target   string
	fragSize int
	mu       sync.Mutex
	pending  map[string]chan incoming
	inbound  map[string]*reassembly
}

type reassembly struct {
	n     int
	parts [][]byte
}

func connect(urlStr, host, target string) (*Peer, error) {
	nc, err := nats.Connect(urlStr)
	if err != nil {
		return nil, err
	}
	p := &Peer{
		nc: nc, host: host, target: target,
		id:      "id-" + randomString(10, "abcdefghijklmnopqrstuvwxyz0123456789"),
		pending: map[string]chan incoming{}, inbound: map[string]*reassembly{},
	}
	max := int(nc.MaxPayload())
	p.fragSize = max - 64*1024
	if max <= 128*1024 {
		p.fragSize = max / 2
	}
	replies := fmt.Sprintf("%s.reply._.*.%s.%s", plane, flatten(host), p.id)
	if _, err := nc.Subscribe(replies, p.onReply); err != nil {
		return nil, err
	}
	return p, nc.Flush()
}

func (p *Peer) onReply(msg *nats.Msg) {
	tokens := strings.Split(msg.Subject, ".")
	if len(tokens) != 6 {
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(msg.Data)), nil)
	if err != nil {
		return
	}
	body, _ := ioutil.ReadAll(resp.Body)
	p.mu.Lock()
	ch := p.pending[resp.Header.Get("Microbus-Msg-Id")]
	p.mu.Unlock()
	if ch != nil {
		select {
		case ch <- incoming{responder: unflatten(tokens[3]), resp: resp, body: body}:
		default:
		}
	}
}

// ---- serving ----

type handler func(ctx context.Context, r *http.Request, body []byte) (interface{}, error)

func (p *Peer) serve(endpoints map[string]handler) error {
	subs := []struct{ subject, queue string }{
		{fmt.Sprintf("%s.safe.443.*.%s._.>", plane, flatten(p.host)), p.host},
		{fmt.Sprintf("%s.safe.888.*.%s._.>", plane, flatten(p.host)), ""},
		{fmt.Sprintf("%s.safe.888.*.all._.>", plane), ""},
		{fmt.Sprintf("%s.safe.*.*.%s.%s.>", plane, flatten(p.host), p.id), ""},
	}
	for _, s := range subs {
		// Read and reassemble in the subscription's own order (fragments
		// arrive in order); handlers run in their own goroutines.
		cb := func(msg *nats.Msg) { p.onRequest(msg, endpoints) }
		var err error
		if s.queue != "" {
			_, err = p.nc.QueueSubscribe(s.subject, s.queue, cb)
		} else {
			_, err = p.nc.Subscribe(s.subject, cb)
		}
		if err != nil {
			return err
		}
	}
	return p.nc.Flush()
}

func (p *Peer) publishResponse(subject string, status int, hdr http.Header, body []byte) {
	parts := [][]byte{body}
	if len(body) > p.fragSize {
		parts = nil
		for at := 0; at < len(body); at += p.fragSize {
			end := at + p.fragSize
			if end > len(body) {
				end = len(body)
			}
			parts = append(parts, body[at:end])
		}
	}
	for i, part := range parts {
		h := hdr.Clone()
		if len(parts) > 1 {
			h.Set("Microbus-Fragment", fmt.Sprintf("%d/%d", i+1, len(parts)))
		}
		resp := &http.Response{
			StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: h,
			Body: ioutil.NopCloser(bytes.NewReader(part)), ContentLength: int64(len(part)),
		}
		var buf bytes.Buffer
		if err := resp.Write(&buf); err == nil {
			p.nc.Publish(subject, buf.Bytes())
		}
	}
}

func (p *Peer) replyHeaders(op, msgID string) http.Header {
	h := http.Header{}
	h.Set("Microbus-Op-Code", op)
	h.Set("Microbus-Msg-Id", msgID)
	h.Set("Microbus-From-Host", p.host)
	h.Set("Microbus-From-Id", p.id)
	h.Set("Microbus-From-Version", "1")
	return h
}

func (p *Peer) onRequest(msg *nats.Msg, endpoints map[string]handler) {
	tokens := strings.Split(msg.Subject, ".")
	if len(tokens) < 8 {
		return
	}
	src := unflatten(tokens[3])
	if tokens[3] == "_" {
		return
	}
	port := tokens[2]
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(msg.Data)))
	if err != nil || req.Header.Get("Microbus-Op-Code") != "Req" {
		return
	}
	body, _ := ioutil.ReadAll(req.Body)
	msgID := req.Header.Get("Microbus-Msg-Id")
	fromID := req.Header.Get("Microbus-From-Id")
	replyTo := fmt.Sprintf("%s.reply._.%s.%s.%s", plane, flatten(p.host), tokens[3], fromID)
	// Fragments: ack the first with 100, reassemble the rest.
	if f := req.Header.Get("Microbus-Fragment"); f != "" {
		var i, n int
		fmt.Sscanf(f, "%d/%d", &i, &n)
		if n > 1 {
			key := fromID + "|" + msgID
			p.mu.Lock()
			r := p.inbound[key]
			if i == 1 {
				r = &reassembly{n: n}
				p.inbound[key] = r
			}
			if r == nil || len(r.parts)+1 != i {
				p.mu.Unlock()
				return
			}
			r.parts = append(r.parts, body)
			done := len(r.parts) == n
			if done {
				delete(p.inbound, key)
			}
			p.mu.Unlock()
			if i == 1 {
				p.publishResponse(replyTo, 100, p.replyHeaders("Ack", msgID), nil)
			}
			if !done {
				return
			}
			body = bytes.Join(r.parts, nil)
		}
	}
	// Ack before running the handler.
	p.publishResponse(replyTo, 202, p.replyHeaders("Ack", msgID), nil)
	go p.handle(req, body, src, port, msgID, replyTo, endpoints)
}

func (p *Peer) handle(req *http.Request, body []byte, src, port, msgID, replyTo string, endpoints map[string]handler) {
	var err error
	depth, _ := strconv.Atoi(req.Header.Get("Microbus-Call-Depth"))
	budget := defaultBudget
	if b := req.Header.Get("Microbus-Time-Budget"); b != "" {
		if d, err := time.ParseDuration(b); err == nil {
			budget = d
		} else if ms, err := strconv.Atoi(b); err == nil {
			budget = time.Duration(ms) * time.Millisecond
		}
	}
	key := port + " " + req.Method + " " + req.URL.Path
	h := endpoints[key]
	var out interface{}
	if depth > maxDepth {
		err = &busError{508, "call depth overflow"}
	} else if h == nil {
		err = &busError{404, "no such endpoint " + key}
	} else {
		fh := req.Header.Clone()
		fh.Set("Microbus-From-Host", src) // certified: the subject's source segment
		ctx, cancel := context.WithTimeout(context.Background(), budget-roundTrip)
		defer cancel()
		ctx = context.WithValue(ctx, frameKey{}, &frame{caller: src, depth: depth, headers: fh})
		req.Header = fh
		done := make(chan struct{})
		go func() { out, err = h(ctx, req, body); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			out, err = nil, &busError{408, "timeout"}
		}
	}
	if err != nil {
		status, message := 500, err.Error()
		var be *busError
		if errors.As(err, &be) {
			status, message = be.Status, be.Message
		}
		hdr := p.replyHeaders("Err", msgID)
		hdr.Set("Content-Type", "application/json")
		p.publishResponse(replyTo, status, hdr, errorBody(status, message))
		return
	}
	b, _ := json.Marshal(out)
	hdr := p.replyHeaders("Res", msgID)
	hdr.Set("Content-Type", "application/json")
	p.publishResponse(replyTo, 200, hdr, b)
}

// ---- calling ----

type result struct {
	status    int
	body      []byte
	header    http.Header
	responder string
	fromID    string
	err       error
}

func (p *Peer) call(ctx context.Context, method, rawURL string, body []byte, multicast bool) ([]result, error) {
	f := frameOf(ctx)
	if f.depth >= maxDepth {
		return nil, &busError{508, "call depth overflow"}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	port := 443
	if u.Port() != "" {
		port, _ = strconv.Atoi(u.Port())
	} else if u.Scheme == "http" {
		port = 80
	}
	host, pos := u.Hostname(), "_"
	// A first label id-… or loc-… moves into the position segment
	// (subject-layout.md: direct and locality addressing).
	if first := strings.SplitN(host, ".", 2); len(first) == 2 {
		if lower := strings.ToLower(first[0]); strings.HasPrefix(lower, "id-") || strings.HasPrefix(lower, "loc-") {
			pos, host = lower, first[1]
		}
	}
	budget := defaultBudget
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl)
	}
	if budget <= roundTrip {
		return nil, &busError{408, "timeout"}
	}
	msgID := newMsgID()
	ch := make(chan incoming, 256)
	p.mu.Lock()
	p.pending[msgID] = ch
	p.mu.Unlock()
	defer func() { p.mu.Lock(); delete(p.pending, msgID); p.mu.Unlock() }()

	parts := [][]byte{body}
	if len(body) > p.fragSize {
		parts = nil
		for at := 0; at < len(body); at += p.fragSize {
			end := at + p.fragSize
			if end > len(body) {
				end = len(body)
			}
			parts = append(parts, body[at:end])
		}
	}
	send := func(i int, pos string) error {
		var rd io.Reader
		if len(parts[i]) > 0 {
			rd = bytes.NewReader(parts[i])
		}
		target := *u
		if pos != "_" {
			target.Host = pos + "." + host
			if u.Port() != "" {
				target.Host += ":" + u.Port()
			}
		}
		req, err := http.NewRequest(method, target.String(), rd)
		if err != nil {
			return err
		}
		for k, vs := range f.headers {
			lk := strings.ToLower(k)
			if strings.HasPrefix(lk, "x-forwarded-") || lk == "accept-language" || lk == "microbus-actor" || strings.HasPrefix(lk, "microbus-baggage-") {
				req.Header[k] = vs
			}
		}
		req.Header.Set("Microbus-Msg-Id", msgID)
		req.Header.Set("Microbus-From-Host", p.host)
		req.Header.Set("Microbus-From-Id", p.id)
		req.Header.Set("Microbus-From-Version", "1")
		req.Header.Set("Microbus-Op-Code", "Req")
		req.Header.Set("Microbus-Time-Budget", budget.String())
		req.Header.Set("Microbus-Call-Depth", strconv.Itoa(f.depth+1))
		trace := randomString(32, "0123456789abcdef")
		if tp := strings.Split(f.headers.Get("Traceparent"), "-"); len(tp) == 4 {
			trace = tp[1]
		}
		req.Header.Set("Traceparent", "00-"+trace+"-"+randomString(16, "0123456789abcdef")+"-01")
		if len(parts) > 1 {
			req.Header.Set("Microbus-Fragment", fmt.Sprintf("%d/%d", i+1, len(parts)))
		}
		var buf bytes.Buffer
		if err := req.WriteProxy(&buf); err != nil {
			return err
		}
		return p.nc.Publish(requestSubject(port, p.host, host, pos, method, u.Path), buf.Bytes())
	}
	if err := send(0, pos); err != nil {
		return nil, err
	}
	start := time.Now()
	ackTimer := time.NewTimer(ackTimeout)
	budgetTimer := time.NewTimer(budget)
	defer ackTimer.Stop()
	defer budgetTimer.Stop()
	acked := map[string]bool{}
	done := map[string]bool{}
	frags := map[string]*reassembly{}
	var results []result
	ackWindowOver := false
	for {
		if ackWindowOver && len(done) >= len(acked) {
			if len(acked) == 0 && !multicast {
				return nil, &busError{404, "ack timeout"}
			}
			return results, nil
		}
		select {
		case in := <-ch:
			if host != "all" && in.responder != host {
				continue // a reply from a host not called
			}
			op := in.resp.Header.Get("Microbus-Op-Code")
			from := in.resp.Header.Get("Microbus-From-Id")
			if op == "Ack" {
				if !acked[from] && len(parts) > 1 && in.resp.StatusCode == 100 {
					for i := 1; i < len(parts); i++ {
						send(i, from)
					}
				}
				acked[from] = true
				continue
			}
			body := in.body
			if fh := in.resp.Header.Get("Microbus-Fragment"); fh != "" {
				var i, n int
				fmt.Sscanf(fh, "%d/%d", &i, &n)
				if n > 1 {
					r := frags[from]
					if i == 1 {
						r = &reassembly{n: n}
						frags[from] = r
					}
					if r == nil || len(r.parts)+1 != i {
						continue
					}
					r.parts = append(r.parts, body)
					if len(r.parts) < n {
						continue
					}
					body = bytes.Join(r.parts, nil)
				}
			}
			acked[from] = true
			done[from] = true
			res := result{status: in.resp.StatusCode, body: body, header: in.resp.Header, responder: in.responder, fromID: from}
			if op == "Err" {
				var e struct {
					Err struct {
						Error      string `json:"error"`
						StatusCode int    `json:"statusCode"`
					} `json:"err"`
				}
				json.Unmarshal(body, &e)
				res.err = &busError{in.resp.StatusCode, e.Err.Error}
			}
			results = append(results, res)
			if !multicast {
				if res.err != nil {
					return results, res.err
				}
				return results, nil
			}
		case <-ackTimer.C:
			ackWindowOver = true
			if len(acked) == 0 && !multicast {
				return nil, &busError{404, "ack timeout"}
			}
		case <-budgetTimer.C:
			_ = start
			if !multicast {
				return nil, &busError{408, "timeout"}
			}
			return results, nil
		}
	}
}

// ---- the endpoints ----

func (p *Peer) endpoints() map[string]handler {
	return map[string]handler{
		"443 GET /hello": func(ctx context.Context, r *http.Request, _ []byte) (interface{}, error) {
			return map[string]string{"greeting": "hello " + r.URL.Query().Get("name")}, nil
		},
		"443 POST /echo": func(ctx context.Context, r *http.Request, body []byte) (interface{}, error) {
			var in struct {
				Data string `json:"data"`
			}
			if err := json.Unmarshal(body, &in); err != nil {
				return nil, &busError{400, err.Error()}
			}
			return map[string]interface{}{"data": in.Data, "length": len(in.Data)}, nil
		},
		"443 GET /slow": func(ctx context.Context, r *http.Request, _ []byte) (interface{}, error) {
			ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return map[string]bool{"done": true}, nil
			case <-ctx.Done():
				return nil, &busError{408, "timeout"}
			}
		},
		"443 GET /fail": func(ctx context.Context, r *http.Request, _ []byte) (interface{}, error) {
			return nil, &busError{409, "go says no"}
		},
		"443 GET /whoami": func(ctx context.Context, r *http.Request, _ []byte) (interface{}, error) {
			f := frameOf(ctx)
			dl, _ := ctx.Deadline()
			trace := ""
			if tp := strings.Split(r.Header.Get("Traceparent"), "-"); len(tp) == 4 {
				trace = tp[1]
			}
			return map[string]interface{}{"who": map[string]interface{}{
				"caller":    f.caller,
				"actor":     r.Header.Get("Microbus-Actor"),
				"tenant":    r.Header.Get("Microbus-Baggage-Tenant"),
				"language":  r.Header.Get("Accept-Language"),
				"forwarded": r.Header.Get("X-Forwarded-Host"),
				"trace":     trace,
				"depth":     f.depth,
				"budgetMs":  time.Until(dl).Milliseconds(),
			}}, nil
		},
		"443 GET /recurse": func(ctx context.Context, r *http.Request, _ []byte) (interface{}, error) {
			res, err := p.call(ctx, "GET", "https://"+p.target+"/recurse", nil, false)
			if err != nil {
				return nil, err
			}
			var out struct {
				Depth int `json:"depth"`
			}
			json.Unmarshal(res[0].body, &out)
			return map[string]int{"depth": out.Depth}, nil
		},
		"888 GET /ping": func(ctx context.Context, r *http.Request, _ []byte) (interface{}, error) {
			return map[string]string{"pong": p.id}, nil
		},
	}
}

// ---- the scenarios of `peer call` ----

type line struct {
	Name   string      `json:"name"`
	Status int         `json:"status"`
	Error  string      `json:"error,omitempty"`
	Body   interface{} `json:"body,omitempty"`
	Count  int         `json:"count,omitempty"`
	// The responder's Microbus-Locality header, if it sent one.
	Locality string `json:"locality,omitempty"`
	Millis   int64  `json:"ms"`
}

func (p *Peer) scenarios(target string) {
	enc := json.NewEncoder(os.Stdout)
	run := func(name string, ctx context.Context, method, path string, body []byte, multicast bool) {
		start := time.Now()
		// Locality scenarios address a locality of the target.
		prefix := map[string]string{"locality": "loc-eu-west.", "locality-broad": "LOC-EU.", "locality-nobody": "loc-ap."}[name]
		res, err := p.call(ctx, method, "https://"+prefix+target+path, body, multicast)
		l := line{Name: name, Millis: time.Since(start).Milliseconds(), Count: len(res)}
		var be *busError
		if errors.As(err, &be) {
			l.Status, l.Error = be.Status, be.Message
		} else if err != nil {
			l.Status, l.Error = -1, err.Error()
		} else if len(res) > 0 {
			l.Status = res[0].status
			l.Locality = res[0].header.Get("Microbus-Locality")
			var v interface{}
			if json.Unmarshal(res[0].body, &v) == nil {
				l.Body = v
			}
			if name == "large" {
				var e struct {
					Data string `json:"result"`
				}
				json.Unmarshal(res[0].body, &e)
				l.Body = map[string]interface{}{"length": len(e.Data), "intact": e.Data == string(body[9:len(body)-2])}
			}
			if multicast {
				var pongs []string
				for _, r := range res {
					var v struct {
						Pong string `json:"pong"`
					}
					json.Unmarshal(r.body, &v)
					pongs = append(pongs, v.Pong)
				}
				l.Body = pongs
			}
		}
		enc.Encode(l)
	}
	bg := context.Background()
	withFrame := context.WithValue(bg, frameKey{}, &frame{headers: http.Header{
		"Microbus-Actor":          {"actor-go"},
		"Microbus-Baggage-Tenant": {"acme"},
		"Accept-Language":         {"fr-CA"},
		"X-Forwarded-Host":        {"www.example.com"},
		"Traceparent":             {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}})
	run("unicast", bg, "GET", "/add?x=2&y=40", nil, false)
	run("query-string", bg, "GET", "/greet?name=Gopher+%26+co", nil, false)
	run("multicast", bg, "GET", ":888/ping", nil, true)
	run("slow", bg, "GET", "/slow?ms=800", nil, false)
	run("error", bg, "GET", "/fail", nil, false)
	big := bytes.Repeat([]byte("0123456789abcdef"), 160*1024) // 2.5 MiB
	payload := append(append([]byte(`{"data":"`), big...), []byte(`"}`)...)
	run("large", bg, "POST", "/echo", payload, false)
	short, cancel := context.WithTimeout(bg, 700*time.Millisecond)
	run("budget", short, "GET", "/slow?ms=3000", nil, false)
	cancel()
	run("depth", bg, "GET", "/recurse", nil, false)
	run("propagation", withFrame, "GET", "/context", nil, false)
	// Locality addressing: the target's instance in eu-west (and only it)
	// answers a call to loc-eu-west.<target>, and names its locality.
	run("locality", bg, "GET", "/add?x=1&y=2", nil, false)
	run("locality-broad", bg, "GET", "/add?x=3&y=4", nil, false)
	run("locality-nobody", bg, "GET", "/add?x=5&y=6", nil, false)
	nobody := p.target
	p.target = "nobody.example"
	start := time.Now()
	_, err := p.call(bg, "GET", "https://nobody.example/x", nil, false)
	l := line{Name: "nobody", Millis: time.Since(start).Milliseconds()}
	var be *busError
	if errors.As(err, &be) {
		l.Status, l.Error = be.Status, be.Message
	}
	enc.Encode(l)
	p.target = nobody
}

// ---- parse-request / parse-response (golden tests) ----

func parseFile(kind, path string) {
	data, err := ioutil.ReadFile(path)
	if err != nil {
		fmt.Println(`{"error":"read"}`)
		os.Exit(2)
	}
	out := map[string]interface{}{}
	var hdr http.Header
	var body io.Reader
	if kind == "parse-request" {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			out["error"] = err.Error()
		} else {
			out["method"], out["url"], out["host"] = req.Method, req.URL.String(), req.Host
			out["contentLength"] = req.ContentLength
			hdr, body = req.Header, req.Body
		}
	} else {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			out["error"] = err.Error()
		} else {
			out["status"] = resp.StatusCode
			out["contentLength"] = resp.ContentLength
			hdr, body = resp.Header, resp.Body
		}
	}
	if hdr != nil {
		out["headers"] = hdr
		b, err := ioutil.ReadAll(body)
		if err != nil {
			out["error"] = err.Error()
		}
		out["body"] = string(b)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peer serve|call|parse-request|parse-response …")
		os.Exit(2)
	}
	cmd := os.Args[1]
	if cmd == "parse-request" || cmd == "parse-response" {
		parseFile(cmd, os.Args[2])
		return
	}
	args := map[string]string{"-instances": "1"}
	for i := 2; i+1 < len(os.Args); i += 2 {
		args[os.Args[i]] = os.Args[i+1]
	}
	n, _ := strconv.Atoi(args["-instances"])
	var peers []*Peer
	for i := 0; i < n; i++ {
		p, err := connect(args["-url"], args["-host"], args["-target"])
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(2)
		}
		peers = append(peers, p)
	}
	switch cmd {
	case "serve":
		for _, p := range peers {
			if err := p.serve(p.endpoints()); err != nil {
				fmt.Fprintln(os.Stderr, "serve:", err)
				os.Exit(2)
			}
		}
		fmt.Println("ready")
		io.Copy(ioutil.Discard, os.Stdin)
	case "call":
		peers[0].scenarios(args["-target"])
	}
}
