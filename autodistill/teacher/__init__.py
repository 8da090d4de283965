"""The teacher: loading, optional fine-tuning into the teacher home, and the output cache."""

from autodistill.teacher.finetune import Teacher, prepare_teacher, teacher_home

__all__ = ["Teacher", "prepare_teacher", "teacher_home"]
