"""Launch environment: SLURM_* -> torch.distributed variables."""
import pytest

from xlda.training.dist_env import first_slurm_host, resolve_env


@pytest.mark.parametrize("nodelist,host", [
    ("node[003-005,007]", "node003"), ("gpu1", "gpu1"), ("a[10],b[1-2]", "a10"),
    ("gpu1,gpu2", "gpu1"),
])
def test_first_slurm_host(nodelist, host):
    assert first_slurm_host(nodelist) == host


def test_slurm_env_is_translated():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
           "SLURM_JOB_NODELIST": "node[12-13]", "SLURM_JOB_ID": "4242"}
    d = resolve_env(env)
    assert (d.rank, d.world_size, d.local_rank) == (5, 8, 1)
    assert (d.master_addr, d.master_port) == ("node12", 14242)
    assert env["RANK"] == "5" and env["MASTER_ADDR"] == "node12"


def test_torchrun_env_wins_over_slurm():
    env = {"SLURM_PROCID": "5", "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
           "MASTER_ADDR": "h", "MASTER_PORT": "29500"}
    d = resolve_env(env)
    assert (d.rank, d.world_size, d.master_addr, d.master_port) == (1, 2, "h", 29500)


def test_single_process_defaults_and_missing_port():
    d = resolve_env({})
    assert (d.rank, d.world_size, d.master_addr) == (0, 1, "127.0.0.1") and d.master_port > 0
    with pytest.raises(RuntimeError, match="MASTER_PORT is not set"):
        resolve_env({"WORLD_SIZE": "2", "RANK": "0"})
