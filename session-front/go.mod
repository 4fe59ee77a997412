module islet/sessionfront

go 1.19
