package main

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo serves one line back per line on a free port of 127.0.0.1.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn) error {
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := bufio.NewReader(c).ReadString('\n')
	return err
}

func dialFrom(t *testing.T, ip, addr string) net.Conn {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProxyCutAndHeal(t *testing.T) {
	ns := &nodes{}
	for i := range 3 {
		adv, err := freeAddr("127.0.0.1", false)
		if err != nil {
			t.Fatal(err)
		}
		ns.list = append(ns.list, &node{idx: i, ip: []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}[i], cluster: echo(t), advertise: adv})
	}
	p, err := startProxy(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	to1 := ns.list[1].advertise
	c01 := dialFrom(t, "127.0.0.11", to1)
	c21 := dialFrom(t, "127.0.0.13", to1)
	if err := roundTrip(c01); err != nil {
		t.Fatalf("0->1 before the cut: %v", err)
	}
	p.isolate(0, 3)
	if err := roundTrip(c01); err == nil {
		t.Fatal("0->1 connection survived the cut")
	}
	if err := roundTrip(dialFrom(t, "127.0.0.11", to1)); err == nil {
		t.Fatal("new 0->1 connection forwarded while cut")
	}
	if err := roundTrip(c21); err != nil {
		t.Fatalf("2->1 affected by isolating 0: %v", err)
	}
	// The harness (127.0.0.1) is never cut.
	if err := roundTrip(dialFrom(t, "127.0.0.1", to1)); err != nil {
		t.Fatalf("unknown source cut: %v", err)
	}
	p.healAll()
	if err := roundTrip(dialFrom(t, "127.0.0.11", to1)); err != nil {
		t.Fatalf("0->1 after heal: %v", err)
	}
}

func TestProxyGrudge(t *testing.T) {
	ns := &nodes{}
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	for i := range 3 {
		adv, err := freeAddr("127.0.0.1", false)
		if err != nil {
			t.Fatal(err)
		}
		ns.list = append(ns.list, &node{idx: i, ip: ips[i], cluster: echo(t), advertise: adv})
	}
	p, err := startProxy(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	up := func(a, b int) bool { return roundTrip(dialFrom(t, ips[a], ns.list[b].advertise)) == nil }
	// Bridge on 3 nodes: 0 and 2 cut, 1 sees both.
	p.grudge([][2]int{{2, 0}})
	if up(0, 2) || up(2, 0) || !up(0, 1) || !up(1, 2) {
		t.Fatal("bridge grudge not applied as given")
	}
	// A new grudge heals the links it does not name.
	p.grudge([][2]int{{0, 1}})
	if !up(0, 2) || up(1, 0) || !up(1, 2) {
		t.Fatal("second grudge did not replace the first")
	}
	p.healAll()
	if !up(0, 1) || !up(0, 2) || !up(1, 2) {
		t.Fatal("heal")
	}
}
