"""The appliance around the services: workspace bootstrap, the appliance password, health checks."""
