"""The material library (data), material-point laws (numpy and UFL), homogenization."""
