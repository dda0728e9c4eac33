"""AWS deployment of the fraud detection system: the CloudFormation template and the scripts around it."""
