"""The search loop: ask the model, run its tool calls, repeat until it answers or a budget runs out.

Every reply's tool calls run (up to a cap), in order. A call identical to an earlier one gets the
earlier observation back with a note; a call that cannot be run (bad JSON, unknown tool, wrong
arguments) gets an error observation the model can act on. When a budget (turns, tokens, wall time)
runs out the model gets one last turn, without tools, to answer. An LLM failure that survives the
policy's retries ends the run with the error recorded; the result keeps whatever was found before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reposearcher_plugin.agent import chat
from reposearcher_plugin.agent.parse import (
    Answer,
    ParsedCall,
    hermes_tool_calls,
    parse_answer,
    parse_location_lines,
)
from reposearcher_plugin.agent.policy import Policy, PolicyError, Reply
from reposearcher_plugin.agent.result import LocalizationResult, Step, ToolCallRecord, Trajectory
from reposearcher_plugin.index import RepoIndex
from reposearcher_plugin.index.locations import SEPARATOR, split_location
from reposearcher_plugin.tools import FINAL_TOOLS, RepoTools, ToolBox, ToolSpec, openai_tools, profile_specs

REPEATED_NOTE = "[Note: this call is identical to an earlier one; its earlier result is repeated here.]"


@dataclass
class AgentConfig:
    profile: str = "default"  # "default" (our tools, one stage) or "tooltrain" (official two-stage flow)
    tool_format: str = "native"  # "native" function calling or "hermes" <tool_call> text
    max_turns: int = 20  # model turns per stage, the final answer turn included
    max_tokens: int = 400_000  # prompt + completion tokens over the whole run
    max_wall_s: float = 900.0
    max_calls_per_turn: int = 8
    max_observation_chars: int = 16_000
    top_k: int = 5  # how many locations the prompts ask for
    hints: int = 0  # default profile: show the retrieval default's top N definitions in the prompt

    def __post_init__(self) -> None:
        profile_specs(self.profile)  # raises on an unknown profile
        if self.tool_format not in chat.TOOL_FORMATS:
            raise ValueError(f"unknown tool format {self.tool_format!r}; choose one of: native, hermes")
        if self.max_turns < 1:
            raise ValueError("max_turns must be at least 1")


class _StageOver(Exception):
    """The policy failed for good; the run stops with what it has."""


class Agent:
    def __init__(self, policy: Policy, config: AgentConfig | None = None) -> None:
        self.policy = policy
        self.config = config or AgentConfig()

    def localize(
        self, index: RepoIndex, issue: str, instance_id: str = "issue", repo: str = ""
    ) -> LocalizationResult:
        return _Run(self, index, issue, instance_id, repo).run()


class _Run:
    """One localization: its conversation(s), counters and trajectory."""

    def __init__(self, agent: Agent, index: RepoIndex, issue: str, instance_id: str, repo: str) -> None:
        self.policy = agent.policy
        self.config = agent.config
        self.index = index
        self.issue = issue
        self.specs: tuple[ToolSpec, ...] = profile_specs(self.config.profile)
        self.tools = ToolBox(index, self.config.profile, RepoTools(index))
        self.started = time.perf_counter()
        self.tokens = 0
        self.calls = 0
        self.seen: dict[str, str] = {}  # call identity -> observation, for repeated calls
        self.found_files: list[str] = []  # the tooltrain files stage's answer, kept if stage two fails
        self.trajectory = Trajectory(
            instance_id=instance_id,
            model=self.policy.name,
            profile=self.config.profile,
            tool_format=self.config.tool_format,
            issue=issue,
            repo=repo,
        )

    # --- the flows -------------------------------------------------------------------------------------

    def run(self) -> LocalizationResult:
        files: list[str] = []
        locations: list[str] = []
        error = None
        try:
            if self.config.profile == "tooltrain":
                files, locations = self._tooltrain()
            else:
                answer = self._stage("search", self._default_prompt(), chat.ANSWER_FORMAT)
                files, locations = answer.files, answer.locations
        except _StageOver as over:
            error = str(over)
            files = self.found_files
        locations = self._resolve(locations)
        self.trajectory.wall_s = round(time.perf_counter() - self.started, 3)
        self.trajectory.error = error
        return LocalizationResult(
            instance_id=self.trajectory.instance_id,
            model=self.policy.name,
            files=files,
            locations=locations,
            usage=self._usage(),
            trajectory=self.trajectory,
            error=error,
        )

    def _default_prompt(self) -> list[dict[str, Any]]:
        overview = self.tools.tools.get_repo_structure(".", 2)
        hints: list[str] = []
        if self.config.hints > 0:
            from reposearcher_plugin.agent.retrieval import RetrievalLocalizer

            ranking = RetrievalLocalizer(self.index, self.tools.tools).rank(self.issue)
            hints = ranking.locations[: self.config.hints]
        return chat.default_prompt(
            self.issue, overview, self.specs, self.config.tool_format, self.config.top_k, hints
        )

    def _tooltrain(self) -> tuple[list[str], list[str]]:
        top_k = self.config.top_k
        prompt = chat.files_prompt(
            self.issue, chat.file_list(self.index), self.specs, self.config.tool_format, top_k
        )
        found = self._stage("files", prompt, chat.FILES_ANSWER.format(top_k=top_k))
        files = [path for path in found.files if path in self.index.files][:top_k] or found.files[:top_k]
        self.found_files = files
        skeletons = "\n\n".join(chat.file_skeleton(self.index, path) for path in files)
        prompt = chat.functions_prompt(self.issue, skeletons, self.specs, self.config.tool_format, top_k)
        located = self._stage("functions", prompt, chat.FUNCTIONS_ANSWER.format(top_k=top_k))
        return files, located.locations

    # --- one stage -------------------------------------------------------------------------------------

    def _stage(self, stage: str, messages: list[dict[str, Any]], answer_format: str) -> Answer:
        start = len(self.trajectory.messages)
        self.trajectory.messages.extend(messages)
        conversation = self.trajectory.messages  # this stage's turns are appended after its prompt
        turns = 0
        nudged = False
        while True:
            reason = self._budget_spent(turns)
            if reason:
                conversation.append(chat.final_turn(reason, answer_format))
                return self._final(stage, conversation[start:], note=f"budget spent: {reason}")
            reply, step = self._ask(stage, conversation[start:], with_tools=True)
            turns += 1
            content, calls = self._split(reply)
            if not calls:
                conversation.append(chat.assistant_message(content, []))
                answer = parse_answer(content)
                if answer.empty and not nudged:
                    nudged = True
                    step.note = f"no tool call and no answer ({answer.problem}); asked again"
                    conversation.append({"role": "user", "content": f"{answer.problem}. {answer_format}"})
                    continue
                return self._answered(step, content, answer)
            conversation.append(chat.assistant_message(content, calls))
            final = self._run_calls(step, calls, conversation)
            if final is None:
                continue
            if final.name == "submit":
                locations = [str(item) for item in (final.arguments or {}).get("locations", [])]
                answer = parse_location_lines(locations)
                return self._answered(step, json.dumps(final.arguments, ensure_ascii=False), answer)
            conversation.append({"role": "user", "content": answer_format})  # exit: now ask for the answer
            return self._final(stage, conversation[start:], note=None)

    def _final(self, stage: str, messages: list[dict[str, Any]], note: str | None) -> Answer:
        """The last turn: no tools offered, and any call in the reply is not run."""
        reply, step = self._ask(stage, messages, with_tools=False)
        content, calls = self._split(reply)
        step.note = note
        if calls:
            step.note = ((note or "") + f"; {len(calls)} tool call(s) in the final turn were not run").lstrip(
                "; "
            )
        self.trajectory.messages.append(chat.assistant_message(content, []))
        return self._answered(step, content, parse_answer(content))

    def _answered(self, step: Step, text: str, answer: Answer) -> Answer:
        self.trajectory.answer = text
        if answer.problem:
            step.note = "; ".join(part for part in (step.note, answer.problem) if part)
        return answer

    # --- model turns and tool calls ---------------------------------------------------------------------

    def _ask(self, stage: str, messages: Sequence[dict[str, Any]], with_tools: bool) -> tuple[Reply, Step]:
        native = self.config.tool_format == "native"
        tools = openai_tools(self.specs) if native and with_tools else None
        step = Step(index=len(self.trajectory.steps), stage=stage, content="")
        self.trajectory.steps.append(step)
        try:
            reply = self.policy.complete(chat.to_wire(messages, self.config.tool_format), tools)
        except PolicyError as error:
            step.error = str(error)
            raise _StageOver(f"LLM error in stage {stage!r}: {error}") from error
        step.content = reply.content
        step.prompt_tokens, step.completion_tokens = reply.prompt_tokens, reply.completion_tokens
        step.latency_s = round(reply.latency_s, 3)
        self.tokens += reply.prompt_tokens + reply.completion_tokens
        return reply, step

    def _split(self, reply: Reply) -> tuple[str, list[ParsedCall]]:
        """The reply's text and its calls: native calls, or hermes blocks in the text (a native endpoint
        without a tool parser returns those as text too)."""
        if reply.tool_calls:
            return reply.content, reply.tool_calls
        return hermes_tool_calls(reply.content, first_id=self.calls)

    def _run_calls(
        self, step: Step, calls: list[ParsedCall], conversation: list[dict[str, Any]]
    ) -> ParsedCall | None:
        """Run a reply's calls; return the first accepted final call (submit / exit), if any."""
        final = None
        for number, call in enumerate(calls):
            started = time.perf_counter()
            ok = False
            repeated = False
            if number >= self.config.max_calls_per_turn:
                text = f"Not run: at most {self.config.max_calls_per_turn} tool calls are run per reply."
            elif call.error:
                text = f"Error: {call.error}. Write the call again as valid JSON."
            elif final is not None:
                text = f"Not run: {final.name} already ended the search."
            elif call.key() in self.seen and call.name not in FINAL_TOOLS:
                text, ok, repeated = f"{self.seen[call.key()]}\n{REPEATED_NOTE}", True, True
            else:
                observation = self.tools.call(call.name, call.arguments)
                text, ok = self._clip(observation.text), observation.ok
                if ok and call.name in FINAL_TOOLS:
                    final = call
                elif ok:
                    self.seen[call.key()] = text
            self.calls += 1
            conversation.append(chat.tool_message(call, text))
            step.calls.append(
                ToolCallRecord(
                    id=call.id,
                    name=call.name,
                    arguments=call.arguments,
                    raw_arguments=call.raw_arguments,
                    observation=text,
                    ok=ok,
                    repeated=repeated,
                    latency_s=round(time.perf_counter() - started, 4),
                )
            )
        return final

    def _clip(self, text: str) -> str:
        limit = self.config.max_observation_chars
        if len(text) <= limit:
            return text
        return text[:limit] + f"\n[... observation cut: {len(text) - limit} more characters; ask for less]"

    def _budget_spent(self, turns: int) -> str | None:
        if turns >= self.config.max_turns - 1:  # the last turn is kept for the answer
            return f"You have used {turns} turns, the most allowed."
        if self.tokens >= self.config.max_tokens:
            return f"You have used {self.tokens} tokens, the most allowed."
        if time.perf_counter() - self.started >= self.config.max_wall_s:
            return "The time for this search is up."
        return None

    # --- the result ----------------------------------------------------------------------------------------

    def _resolve(self, locations: list[str]) -> list[str]:
        """Fix the commonest slip of small models: a method written without its class. ``path::m`` becomes
        ``path::C.m`` when ``path`` has no ``m`` of its own and exactly one definition ending in ``.m``."""
        resolved = []
        for location in locations:
            path, name = split_location(location)
            indexed = self.index.files.get(path)
            if name and indexed is not None:
                qualnames = {entity.qualname for entity in indexed.parse.entities}
                if name not in qualnames:
                    candidates = [qualname for qualname in qualnames if qualname.endswith("." + name)]
                    if len(candidates) == 1:
                        location = f"{path}{SEPARATOR}{candidates[0]}"
            resolved.append(location)
        return resolved

    def _usage(self) -> dict[str, Any]:
        steps = self.trajectory.steps
        return {
            "prompt_tokens": sum(step.prompt_tokens for step in steps),
            "completion_tokens": sum(step.completion_tokens for step in steps),
            "turns": len(steps),
            "tool_calls": self.calls,
            "wall_s": round(time.perf_counter() - self.started, 3),
        }
