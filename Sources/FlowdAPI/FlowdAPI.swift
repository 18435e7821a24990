// FlowdAPI
