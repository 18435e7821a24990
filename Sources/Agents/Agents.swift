// Agents
