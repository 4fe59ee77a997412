module islet/agent

go 1.19
