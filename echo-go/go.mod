module github.com/rrlb/rrlb/echo-go

go 1.22
