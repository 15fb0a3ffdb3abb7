"""The repair patcher (the patch step of %Resolved): localizations in, SWE-bench predictions out.

A second LLM agent, Agentless-style: the localized code goes into one prompt with the issue, the model
answers with SEARCH/REPLACE edits, the applied edits become a ``git diff``, samples vote. One job a module:

- ``options.py``: ``PatchOptions``, the patcher's settings;
- ``prompt.py``: the prompt and its code section (the localized entities with line numbers);
- ``edits.py``: SEARCH/REPLACE blocks, parsed from a reply and applied to the snapshot's files;
- ``diff.py``: the patch of the edited files, as ``git diff`` writes it;
- ``files.py``: reading and writing repository files byte for byte, paths kept inside the repository;
- ``voting.py``: the majority vote over samples (patches read by ``evaluation/diffs.py``);
- ``runner.py``: one instance (attempts, retries, the log) and the batch, through ``evaluation/batch.py``.

Layer: between ``evaluation`` (layer 5) and ``hosts`` (layer 6). It imports the agent's ``Policy``, the
workspace and the index, and from ``evaluation`` the instances, the localizations' ``Prediction``, the
diff reader and the shared batch runner; no layer above it imports it. The %Resolved pipeline
(``evaluation/resolve.py``, the joint report) takes the predictions *file* it writes, never its code, and
the ``reposearcher patch`` command (``cli/patch_cmd.py``) is where the two meet.
"""
