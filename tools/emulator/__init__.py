"""The local AWS emulator for development and tests (moto server) and the provisioner that builds the
stack's resources in it through the service APIs. Shipped by no deployable; ``infra/deploy.py`` takes
the provisioner as an argument and never imports this package."""
