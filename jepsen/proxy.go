package main

import (
	"io"
	"net"
	"sync"
)

// netProxy is the fault-injecting TCP proxy: one listener per node, on the
// address the node advertises as its cluster address. Peers dial from
// their own loopback address (127.0.0.(11+i)), so the proxy knows which
// link (from, to) a connection belongs to. A cut link is symmetric:
// cutting {a, b} closes every open connection between them, and new
// connections on it are accepted but held without forwarding until the
// link heals, then closed (a real partition would let the SYN time out).
// Connections from unknown sources pass.
type netProxy struct {
	mu    sync.Mutex
	byIP  map[string]int
	cut   map[[2]int]bool
	conns map[[2]int]map[net.Conn]bool
	lns   []net.Listener
	wg    sync.WaitGroup
}

func link(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

func startProxy(ns *nodes) (*netProxy, error) {
	p := &netProxy{byIP: map[string]int{}, cut: map[[2]int]bool{}, conns: map[[2]int]map[net.Conn]bool{}}
	for _, nd := range ns.list {
		p.byIP[nd.ip] = nd.idx
	}
	for _, nd := range ns.list {
		ln, err := net.Listen("tcp", nd.advertise)
		if err != nil {
			p.close()
			return nil, err
		}
		p.lns = append(p.lns, ln)
		p.wg.Add(1)
		go p.serve(ln, nd.idx, nd.cluster)
	}
	return p, nil
}

func (p *netProxy) serve(ln net.Listener, to int, backend string) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c, to, backend)
	}
}

func (p *netProxy) handle(c net.Conn, to int, backend string) {
	from := -1
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if i, ok := p.byIP[a.IP.String()]; ok {
			from = i
		}
	}
	l := link(from, to)
	if from >= 0 && !p.track(l, c) {
		return // held and closed by heal
	}
	b, err := net.Dial("tcp", backend)
	if err != nil {
		p.untrack(l, c)
		c.Close()
		return
	}
	if from >= 0 && !p.track(l, b) {
		c.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
	if from >= 0 {
		p.untrack(l, c)
		p.untrack(l, b)
	}
}

// track registers a connection of link l. While l is cut, the connection
// is held: track returns false and the connection is closed at heal.
func (p *netProxy) track(l [2]int, c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[l] == nil {
		p.conns[l] = map[net.Conn]bool{}
	}
	p.conns[l][c] = true
	return !p.cut[l]
}

func (p *netProxy) untrack(l [2]int, c net.Conn) {
	p.mu.Lock()
	delete(p.conns[l], c)
	p.mu.Unlock()
}

// isolate cuts every link of node i.
func (p *netProxy) isolate(i, n int) {
	for j := range n {
		if j != i {
			p.setCut(i, j, true)
		}
	}
}

// setCut cuts or heals the link between a and b; both close its open
// connections.
func (p *netProxy) setCut(a, b int, cut bool) {
	l := link(a, b)
	p.mu.Lock()
	p.cut[l] = cut
	var cs []net.Conn
	for c := range p.conns[l] {
		cs = append(cs, c)
	}
	if cut {
		// Connections opened while cut are held; the old ones are reset.
		p.conns[l] = map[net.Conn]bool{}
	} else {
		delete(p.conns, l)
	}
	p.mu.Unlock()
	if cut {
		for _, c := range cs {
			c.Close()
		}
		return
	}
	for _, c := range cs {
		c.Close() // the held connections
	}
}

// healAll heals every link.
func (p *netProxy) healAll() {
	p.mu.Lock()
	var ls [][2]int
	for l, c := range p.cut {
		if c {
			ls = append(ls, l)
		}
	}
	p.mu.Unlock()
	for _, l := range ls {
		p.setCut(l[0], l[1], false)
	}
}

func (p *netProxy) close() {
	for _, ln := range p.lns {
		ln.Close()
	}
	p.healAll()
	p.mu.Lock()
	for _, cs := range p.conns {
		for c := range cs {
			c.Close()
		}
	}
	p.mu.Unlock()
}

// grudge cuts exactly the given links (and heals every other one).
func (p *netProxy) grudge(cuts [][2]int) {
	want := map[[2]int]bool{}
	for _, c := range cuts {
		want[link(c[0], c[1])] = true
	}
	p.mu.Lock()
	var heal [][2]int
	for l, c := range p.cut {
		if c && !want[l] {
			heal = append(heal, l)
		}
	}
	p.mu.Unlock()
	for _, l := range heal {
		p.setCut(l[0], l[1], false)
	}
	for l := range want {
		p.setCut(l[0], l[1], true)
	}
}
