// Go's net/smtp as a benchmark peer: N messages over C connections, each
// connection reused (MAIL, RCPT, DATA, then Reset as net/smtp requires).
package main

import (
	"flag"
	"fmt"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("server", "127.0.0.1:25", "host:port")
	n := flag.Int("messages", 1000, "messages")
	size := flag.Int("size", 1024, "bytes per message")
	conns := flag.Int("connections", 1, "connections")
	flag.Parse()
	body := []byte("From: <bench@localhost>\r\nTo: <sink@localhost>\r\nSubject: bench\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 76)+"\r\n", *size/78+1))
	var wg sync.WaitGroup
	per := *n / *conns
	start := time.Now()
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.Dial(*addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			cl.Hello("localhost")
			for i := 0; i < per; i++ {
				if err := cl.Mail("bench@localhost"); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				cl.Rcpt("sink@localhost")
				w, _ := cl.Data()
				w.Write(body)
				w.Close()
				cl.Reset()
			}
			cl.Quit()
		}()
	}
	wg.Wait()
	fmt.Printf("%.1f\n", float64(per**conns)/time.Since(start).Seconds())
}
