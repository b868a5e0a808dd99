// winrm-go: drives a WinRM endpoint with the Go WinRM library Packer and Terraform use
// (github.com/masterzen/winrm over github.com/Azure/go-ntlmssp), unmodified, as Debian packages
// it. hive's tests run it against the simulated fleet to prove the simulator speaks WinRM to a
// client that is neither ours nor Python's.
//
// Usage: winrm-go SPEC_JSON
//
//	{"host": "127.0.0.1", "port": 5986, "https": true, "insecure": true,
//	 "user": "Administrator", "password": "...", "auth": "ntlm" | "basic",
//	 "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "hi"]}, ...]}
//
// It runs every step in one shell and prints one JSON report on stdout:
//
//	{"results": [{"stdout": BASE64, "stderr": BASE64, "rc": N}, ...], "error": null | "text"}
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/masterzen/winrm"
)

type step struct {
	Command string   `json:"command"`
	Args    []string `json:"args"`
}

type spec struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	HTTPS    bool   `json:"https"`
	Insecure bool   `json:"insecure"`
	User     string `json:"user"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
	Steps    []step `json:"steps"`
}

type result struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	RC     int64  `json:"rc"`
}

type report struct {
	Results []result `json:"results"`
	Error   *string  `json:"error"`
}

func main() {
	out := report{Results: []result{}}
	if err := run(&out); err != nil {
		text := err.Error()
		out.Error = &text
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func run(out *report) error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: winrm-go SPEC_JSON")
	}
	var s spec
	if err := json.Unmarshal([]byte(os.Args[1]), &s); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	endpoint := winrm.NewEndpoint(s.Host, s.Port, s.HTTPS, s.Insecure, nil, nil, nil, 60*time.Second)
	params := *winrm.DefaultParameters
	if s.Auth != "basic" {
		params.TransportDecorator = func() winrm.Transporter { return &winrm.ClientNTLM{} }
	}
	client, err := winrm.NewClientWithParameters(endpoint, s.User, s.Password, &params)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	shell, err := client.CreateShell()
	if err != nil {
		return fmt.Errorf("create shell: %w", err)
	}
	defer shell.Close()
	for i, st := range s.Steps {
		r, err := execute(shell, st)
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i, st.Command, err)
		}
		out.Results = append(out.Results, r)
	}
	return nil
}

func execute(shell *winrm.Shell, st step) (result, error) {
	cmd, err := shell.Execute(st.Command, st.Args...)
	if err != nil {
		return result{}, err
	}
	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(&stdout, cmd.Stdout) }()
	go func() { defer wg.Done(); _, _ = io.Copy(&stderr, cmd.Stderr) }()
	cmd.Wait()
	wg.Wait()
	code := cmd.ExitCode()
	if err := cmd.Close(); err != nil {
		return result{}, err
	}
	return result{
		Stdout: base64.StdEncoding.EncodeToString(stdout.Bytes()),
		Stderr: base64.StdEncoding.EncodeToString(stderr.Bytes()),
		RC:     int64(code),
	}, nil
}
