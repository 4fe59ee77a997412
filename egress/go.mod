module islet/egress

go 1.19
