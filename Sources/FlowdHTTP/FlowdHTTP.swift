// FlowdHTTP
