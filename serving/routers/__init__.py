"""One router per resource: policies, rollouts, robots, episodes, runs, health, dashboard, inference."""
