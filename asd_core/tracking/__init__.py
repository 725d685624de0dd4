"""MLflow tracking and model registry of the workspace (sqlite store + artifacts under ``mlflow/``)."""
