// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title A devnet price feed in the shape of a Chainlink aggregator
/// @notice Answers `latestRoundData()` and `decimals()` as Chainlink's AggregatorV3Interface does
/// and emits the aggregator's `AnswerUpdated` and `NewRound` events on each new answer, so the
/// indexer reads prices from it exactly as from a real feed. The owner posts answers.
/// @dev Written for the devnet from the interface; not Chainlink's code.
contract PriceFeed {
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

    error NotOwner();

    address public immutable owner;
    uint8 public immutable decimals;
    string public description;
    uint80 private _round;
    int256 private _answer;
    uint256 private _updatedAt;

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        owner = msg.sender;
        decimals = decimals_;
        description = description_;
        _post(initialAnswer);
    }

    function updateAnswer(int256 answer) external {
        if (msg.sender != owner) revert NotOwner();
        _post(answer);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_round, _answer, _updatedAt, _updatedAt, _round);
    }

    function latestAnswer() external view returns (int256) {
        return _answer;
    }

    function _post(int256 answer) internal {
        _round += 1;
        _answer = answer;
        _updatedAt = block.timestamp;
        emit NewRound(_round, msg.sender, block.timestamp);
        emit AnswerUpdated(answer, _round, block.timestamp);
    }
}
