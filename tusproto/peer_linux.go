package tusproto

import (
	"net"
	"syscall"
)

// peerOpen reports whether a kept connection may carry a request: its
// peer has not closed it (a server's idle timeout) and sent nothing
// unasked. It peeks at the socket without blocking, looking through TLS and
// wrappers that expose NetConn.
func peerOpen(conn net.Conn) bool {
	for {
		wrapper, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = wrapper.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, as it should be. No error: the end of
		// the stream, or bytes nobody asked for; any other error: broken.
		open = err == syscall.EAGAIN
		return true // never wait for readiness
	})
	return err == nil && open
}
