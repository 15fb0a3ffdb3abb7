"""The search loop: ask the model, run its tool calls, repeat until it answers or a budget runs out.

Every reply's tool calls run (up to a cap), in order. A call identical to an earlier one is not run
again: it gets a note that its result is already in the conversation. A call that cannot be run (bad
JSON, unknown tool, wrong arguments) gets an error observation the model can act on. When a budget
(turns, tokens, wall time) runs out, or the model stalls (turn after turn of repeated or failing
calls), the model gets one last turn, without tools, to answer, and one more that asks for nothing
but the answer. Old observations are dropped before the conversation outgrows the model's context
window. Weak models still end without an answer: then the locations their tool calls returned,
ranked by the offline default, are the result, and the trajectory says so. An LLM failure that
survives the policy's retries ends the run with the error recorded; the result keeps whatever was
found before.

One job in one module, though long: every budget, stall rule and context trim decides what the next
turn sends, so they are read together with the loop they steer.

The budgets and the context window are ``limits.py``, what an answer becomes (resolved, kept to the
repository, the fallback) is ``answers.py``, the settings are ``config.py``. What stays here is one job,
the turns of a run, and stays one module: the stage loop, its final turns and the running of a reply's
calls all read and write the one conversation, trajectory and counters of a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reposearcher_plugin.agent import chat
from reposearcher_plugin.agent.answers import fallback, in_repository, resolve_locations
from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.limits import LOW_WATER, Budget, ContextWindow, wire_chars
from reposearcher_plugin.agent.offline import DEFAULT_MODEL, LEARNED, PLAIN, RETRIEVAL_MODELS
from reposearcher_plugin.agent.parse import Answer, parse_answer, parse_location_lines
from reposearcher_plugin.agent.policy import Policy, PolicyError, Reply
from reposearcher_plugin.agent.result import LocalizationResult, Step, ToolCallRecord, Trajectory
from reposearcher_plugin.agent.tool_calls import ParsedCall, hermes_tool_calls, loose_tool_calls
from reposearcher_plugin.index import RepoIndex
from reposearcher_plugin.index.locations import file_of
from reposearcher_plugin.tools import FINAL_TOOLS, RepoTools, ToolBox, ToolSpec, openai_tools, profile_specs
from reposearcher_plugin.tools.session import ToolSession, invalid_call_text

if TYPE_CHECKING:
    from reposearcher_plugin.rank.history import ChangeHistory

STALLED = (
    "Your last {turns} replies only repeated earlier calls or made calls that failed, so the search is over."
)
# an answer of ten entity ids and a reason fits in ~250 tokens; a small model that rambles to a 1,024-token
# cap in the answer turn (at ~14 tokens/s on a CPU) would outlast the answer turn's grace
ANSWER_MAX_TOKENS = 512
ANSWER_ONLY = "Reply with nothing but the final answer: one ``` block of locations.\n{answer_format}"
NOT_IN_REPOSITORY = (
    "None of the locations in your answer exist in this repository: {paths}. Do not guess paths: search "
    "with the tools to find the real files and definitions, then answer again."
)


class _StageOver(Exception):
    """The policy failed for good; the run stops with what it has."""


class _TimeUp(Exception):
    """A search turn's request outlasted the wall budget: the answer turn comes next."""


class Agent:
    def __init__(self, policy: Policy, config: AgentConfig | None = None) -> None:
        self.policy = policy
        self.config = config or AgentConfig()

    def localize(
        self,
        index: RepoIndex,
        issue: str,
        instance_id: str = "issue",
        repo: str = "",
        history: ChangeHistory | None = None,
    ) -> LocalizationResult:
        return _Run(self, index, issue, instance_id, repo, history).run()


class _Run:
    """One localization: its conversation(s), counters and trajectory."""

    def __init__(
        self,
        agent: Agent,
        index: RepoIndex,
        issue: str,
        instance_id: str,
        repo: str,
        history: ChangeHistory | None = None,
    ) -> None:
        self.history = history
        self.policy = agent.policy
        self.config = agent.config
        self.index = index
        self.issue = issue
        self.specs: tuple[ToolSpec, ...] = profile_specs(self.config.profile)
        self.repo_tools = RepoTools(index)
        self.prompts = chat.Prompts(self.config.prompts) if self.config.prompts else chat.default_prompts()
        self.session = ToolSession(
            ToolBox(index, self.config.profile, self.repo_tools), self.config.max_observation_chars
        )
        self.budget = Budget(self.config.max_turns, self.config.max_tokens, self.config.max_wall_s)
        self.calls = 0
        # id() of a tool message -> its call's identity, to forget dropped observations (call ids are not
        # unique across turns on every server)
        self.call_keys: dict[int, str] = {}
        self.stalled = 0  # consecutive turns in which no call brought anything new
        self.context = ContextWindow(self.policy, self.config.context_window)
        self.ranking: Any = None  # the offline default's ranking, computed at most once
        self.known_files: set[str] | None = None  # every path of the repository, built when first needed
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
            if chat.stages(self.config.profile) == ("files", "functions"):
                files, locations = self._tooltrain()
            else:
                answer = self._stage(
                    "search", self._first_turns("search"), chat.answer_format("search", 0, self.prompts)
                )
                files, locations = answer.files, answer.locations
        except _StageOver as over:
            error = str(over)
            files = self.found_files
        files, locations = self._in_repository(files, resolve_locations(self.index, locations))
        if not locations and self.config.fallback:
            fallback_files, locations, self.trajectory.fallback = fallback(
                self.trajectory.steps, self.index, self.repo_tools, self._ranking
            )
            files = files or fallback_files
        self.trajectory.wall_s = round(self.budget.elapsed(), 3)
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

    def _first_turns(self, stage: str, files: Sequence[str] = ()) -> list[dict[str, Any]]:
        hints: list[str] = []
        if stage == "search" and self.config.hints > 0:
            hints = self._ranking().locations[: self.config.hints]
        return chat.first_turns(
            stage,
            self.issue,
            self.repo_tools,
            self.specs,
            self.config.tool_format,
            self.config.top_k,
            hints=hints,
            files=files,
            prompts=self.prompts,
        )

    def _files_turns(self) -> list[dict[str, Any]]:
        """The files stage's first turns. The official prompt lists every source file: for a big
        repository that is more than a small model's window (Django: 29k tokens against 16k), and the
        request can only fail. Then the list keeps the files the offline default ranks first, as many as
        fit in LOW_WATER of the budget, and says how many it left out."""
        turns = self._first_turns("files")
        budget = self.context.budget()
        tools = openai_tools(self.specs) if self.config.tool_format == "native" else None
        size = self.context.tokens(wire_chars(chat.to_wire(turns, self.config.tool_format), tools))
        if budget is None or size <= LOW_WATER * budget:
            return turns
        listed = self.context.tokens(sum(len(path) + 1 for path in self.index.files))
        room = LOW_WATER * budget - (size - listed)
        kept: list[str] = []
        ranked = dict.fromkeys([*self._ranking().files, *sorted(self.index.files)])
        for path in (path for path in ranked if path in self.index.files):
            room -= self.context.tokens(len(path) + 1)
            if room < 0:
                break
            kept.append(path)
        return self._first_turns("files", kept or list(ranked)[:1])

    def _tooltrain(self) -> tuple[list[str], list[str]]:
        top_k = self.config.top_k
        found = self._stage("files", self._files_turns(), chat.answer_format("files", top_k, self.prompts))
        files = [path for path in found.files if path in self.index.files][:top_k] or found.files[:top_k]
        self.found_files = files
        prompt = self._first_turns("functions", files)
        located = self._stage("functions", prompt, chat.answer_format("functions", top_k, self.prompts))
        return files, located.locations

    # --- one stage -------------------------------------------------------------------------------------

    def _stage(self, stage: str, messages: list[dict[str, Any]], answer_format: str) -> Answer:
        start = len(self.trajectory.messages)
        self.trajectory.messages.extend(messages)
        conversation = self.trajectory.messages  # this stage's turns are appended after its prompt
        turns = 0
        nudged = False
        challenged = False  # an answer naming nothing in the repository was sent back once
        self.stalled = 0
        while True:
            reason = self.budget.spent(turns)
            if reason:
                conversation.append(chat.final_turn(reason, answer_format, self.prompts))
                return self._final(stage, start, answer_format, note=f"budget spent: {reason}")
            if self.stalled >= self.config.max_stalled_turns:
                reason = STALLED.format(turns=self.stalled)
                conversation.append(chat.final_turn(reason, answer_format, self.prompts))
                return self._final(stage, start, answer_format, note="stalled: no new successful call")
            try:
                reply, step = self._ask(stage, conversation, start, with_tools=True)
            except _TimeUp:
                reason = "The time for this search is up."
                conversation.append(chat.final_turn(reason, answer_format, self.prompts))
                return self._final(stage, start, answer_format, note="budget spent: time (a reply was cut)")
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
                if not challenged and self._challenge(step, answer, conversation):
                    challenged = True
                    continue
                return self._answered(step, content, answer)
            conversation.append(chat.assistant_message(content, calls))
            final = self._run_calls(step, calls, conversation)
            productive = any(call.ok and not call.repeated for call in step.calls)
            self.stalled = 0 if productive else self.stalled + 1
            if final is None:
                continue
            if final.name == "submit":
                locations = [str(item) for item in (final.arguments or {}).get("locations", [])]
                answer = parse_location_lines(locations)
                if not challenged and self._challenge(step, answer, conversation):
                    challenged = True
                    continue
                return self._answered(step, json.dumps(final.arguments, ensure_ascii=False), answer)
            # exit: now ask for the answer. In one stage, inside the exit's observation, as RL's one
            # conversation can only ask it (rl/verl_tools.py, answer_prompt); between the official two
            # stages, as a user turn, as the official flow does
            if stage == "search":
                exit_message = next(m for m in reversed(conversation) if m.get("tool_call_id") == final.id)
                exit_message["content"] = f"{exit_message['content']}\n\n{answer_format}"
            else:
                conversation.append({"role": "user", "content": answer_format})
            return self._final(stage, start, answer_format, note=None)

    def _challenge(self, step: Step, answer: Answer, conversation: list[dict[str, Any]]) -> bool:
        """Send an answer back once when it names paths but none in the repository: small models answer at
        once with invented paths, and the searching they skipped is what they are for."""
        named = [*answer.files, *(file_of(location) for location in answer.locations)]
        if not named or any(self._known_file(path) for path in named):
            return False
        unknown = list(dict.fromkeys(named))
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        conversation.append({"role": "user", "content": NOT_IN_REPOSITORY.format(paths=shown)})
        what = f"answer named no path in the repository ({len(unknown)} unknown); sent back to search"
        step.note = "; ".join(part for part in (step.note, what) if part)
        return True

    def _known_file(self, path: str) -> bool:
        return path in self._known_files()

    def _known_files(self) -> set[str]:
        if self.known_files is None:
            self.known_files = set(self.index.files) | set(self.index.other_files)
        return self.known_files

    def _final(self, stage: str, start: int, answer_format: str, note: str | None) -> Answer:
        """The last turns: tools shown but not callable, any call in a reply is not run, and an unreadable
        answer is asked for once more, alone (small models often keep "searching" in prose)."""
        conversation = self.trajectory.messages
        for attempt in range(2):
            reply, step = self._ask(stage, conversation, start, with_tools=False)
            content, calls = self._split(reply)
            step.note = note
            if calls:
                unrun = f"{len(calls)} tool call(s) in the final turn were not run"
                step.note = "; ".join(part for part in (note, unrun) if part)
            conversation.append(chat.assistant_message(content, []))
            answer = parse_answer(content)
            if not answer.empty or attempt == 1:
                return self._answered(step, content, answer)
            conversation.append({"role": "user", "content": ANSWER_ONLY.format(answer_format=answer_format)})
            note = f"asked for the answer alone ({answer.problem})"
        raise AssertionError("unreachable")

    def _answered(self, step: Step, text: str, answer: Answer) -> Answer:
        self.trajectory.answer = text
        if answer.problem:
            step.note = "; ".join(part for part in (step.note, answer.problem) if part)
        return answer

    # --- model turns and tool calls ---------------------------------------------------------------------

    def _ask(
        self, stage: str, conversation: list[dict[str, Any]], start: int, with_tools: bool
    ) -> tuple[Reply, Step]:
        """One model turn on this stage's messages (``conversation[start:]``), fitted to the window."""
        native = self.config.tool_format == "native"
        # the answer turn offers the tools too (not callable): the same prompt prefix as the search turns
        tools = openai_tools(self.specs) if native else None
        step = Step(index=len(self.trajectory.steps), stage=stage, content="")
        self.trajectory.steps.append(step)
        dropped = self._fit_context(conversation, start, tools, everything=False)
        for attempt in range(2):
            wire = chat.to_wire(conversation[start:], self.config.tool_format)
            try:
                reply = self.policy.complete(
                    wire,
                    tools,
                    deadline=self.budget.deadline(searching=with_tools),
                    allow_calls=with_tools,
                    max_tokens=None if with_tools else ANSWER_MAX_TOKENS,
                )
                break
            except PolicyError as error:
                # the window estimate was off: drop every observation but the newest turn's, once
                if error.context_window and attempt == 0:
                    more = self._fit_context(conversation, start, tools, everything=True)
                    if more:
                        dropped += more
                        continue
                step.error = str(error)
                if error.out_of_time and with_tools:
                    raise _TimeUp from error
                turn = "" if with_tools else ", answer turn"
                raise _StageOver(f"LLM error in stage {stage!r}{turn}: {error}") from error
        if dropped:
            step.note = f"{dropped} old observation(s) dropped to fit the context window"
        step.content = reply.content
        step.prompt_tokens, step.completion_tokens = reply.prompt_tokens, reply.completion_tokens
        step.latency_s = round(reply.latency_s, 3)
        self.budget.spend(reply.prompt_tokens + reply.completion_tokens)
        self.context.measure(reply.prompt_tokens, wire, tools)
        return reply, step

    def _fit_context(
        self,
        conversation: list[dict[str, Any]],
        start: int,
        tools: list[dict[str, Any]] | None,
        everything: bool,
    ) -> int:
        """Drop old observations of this stage to fit the window (``ContextWindow.fit``); a dropped
        call may run again. Returns how many were dropped."""
        dropped = self.context.fit(conversation[start:], tools, self.config.tool_format, everything)
        for message in dropped:
            self.session.forget(self.call_keys.pop(id(message), ""))
        return len(dropped)

    def _split(self, reply: Reply) -> tuple[str, list[ParsedCall]]:
        """The reply's text and its calls: native calls, hermes blocks in the text (a native endpoint
        without a tool parser returns those as text too), or the other forms small models write (fenced
        JSON, Python-style calls) when they name an offered tool."""
        if reply.tool_calls:
            return reply.content, reply.tool_calls
        content, calls = hermes_tool_calls(reply.content, first_id=self.calls)
        if calls:
            return content, calls
        params = {spec.name: [param.name for param in spec.params] for spec in self.specs}
        return loose_tool_calls(reply.content, params, first_id=self.calls)

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
                text = invalid_call_text(call.error)
            elif final is not None:
                text = f"Not run: {final.name} already ended the search."
            else:
                observation = self.session.call(call.name, call.arguments, call.raw_arguments)
                text, ok, repeated = observation.text, observation.ok, observation.repeated
                if ok and call.name in FINAL_TOOLS:
                    final = call
            self.calls += 1
            message = chat.tool_message(call, text)
            if ok and not repeated and call.name not in FINAL_TOOLS:
                self.call_keys[id(message)] = observation.key
            conversation.append(message)
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

    # --- the result ----------------------------------------------------------------------------------------

    def _ranking(self) -> Any:
        if self.ranking is None:
            from reposearcher_plugin.rank import RetrievalLocalizer
            from reposearcher_plugin.rank.learned import packaged_ranker

            # the hints are the offline default's ranking: one ranker for both (docs/ranker.md)
            kind = RETRIEVAL_MODELS[DEFAULT_MODEL]
            ranker = RetrievalLocalizer(
                self.index,
                self.repo_tools,
                plain=kind == PLAIN,
                ranker=packaged_ranker() if kind == LEARNED else None,
                history=self.history,
            )
            self.ranking = ranker.rank(self.issue, max_files=10_000, max_locations=100_000)
        return self.ranking

    def _in_repository(self, files: list[str], locations: list[str]) -> tuple[list[str], list[str]]:
        kept_files, kept, dropped = in_repository(self.index, self._known_files(), files, locations)
        if dropped and self.trajectory.steps:
            step = self.trajectory.steps[-1]
            what = f"{dropped} answered file(s)/location(s) not in the repository were dropped"
            step.note = "; ".join(part for part in (step.note, what) if part)
        return kept_files, kept

    def _usage(self) -> dict[str, Any]:
        steps = self.trajectory.steps
        return {
            "prompt_tokens": sum(step.prompt_tokens for step in steps),
            "completion_tokens": sum(step.completion_tokens for step in steps),
            "turns": len(steps),
            "tool_calls": self.calls,
            "wall_s": round(self.budget.elapsed(), 3),
        }
