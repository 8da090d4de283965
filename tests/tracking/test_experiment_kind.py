"""The MLflow experiment says it holds model training, so the UI opens on its runs and metrics."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from autodistill.tracking.mlflow_tracker import KIND, Tracker


def test_a_new_experiment_is_marked_as_model_training(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Tracker(uri, "autodistill", "s", tmp_path / "art")
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("autodistill")
    assert exp.tags[KIND] == "custom_model_development"


def test_an_existing_experiment_gets_the_kind_but_keeps_one_the_user_set(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("plain", artifact_location=(tmp_path / "a").as_uri())
    mine = client.create_experiment("mine", artifact_location=(tmp_path / "b").as_uri())
    client.set_experiment_tag(mine, KIND, "genai_development")
    Tracker(uri, "plain", "s", tmp_path / "art")
    Tracker(uri, "mine", "s", tmp_path / "art")
    assert client.get_experiment_by_name("plain").tags[KIND] == "custom_model_development"
    assert client.get_experiment_by_name("mine").tags[KIND] == "genai_development"
